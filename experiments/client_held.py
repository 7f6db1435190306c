"""The simulator's client model (`sim/client.py`) against LangGraph's real client at the
paper's concurrency: `runtime.client_overhead.held.measure_held` (LangGraph MapRed against a
mock server holding every answer) beside `predict_held` (the same workload through
`sim.client.ClientCPU` with the recorded constants: langgraph_mapred's size fit, the pool
fit, the measured passes per call / 2 per event; each answer `hold_ms` after its request
leaves the client; the predicted makespan is when the last summarizer's answer is handled).

    python -m experiments.client_held                  # ≈ 6 min on 2 cores
    python -m experiments.client_held --calls 250 --out /tmp/held.json

Results go to ``conf/orchestration/client_held.json``; docs/client_overhead.md part 4.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import heapq
import json
import os

from runtime.client_overhead.cli import machine_info
from runtime.client_overhead.held import measure_held
from runtime.client_overhead.measure import log
from runtime.client_overhead.workloads import REPO_ROOT
from sim.client import ClientCost, ClientCPU

DEFAULT_OUT = REPO_ROOT / "conf" / "orchestration" / "client_held.json"
RECORDED = REPO_ROOT / "conf" / "orchestration" / "client_overhead.json"


def recorded_cost(passes: float) -> ClientCost:
    """`ClientCost` of LangGraph from the recorded report (its size fit) and `passes`."""
    keys = json.loads(RECORDED.read_text())["orchestration_keys_this_machine"]
    k = keys["langgraph_mapred"]
    return ClientCost(call_s=k["client_call_s"], prompt_token_s=k["client_prompt_token_s"],
                      output_token_s=k["client_output_token_s"], pool_passes=passes)


def predict_held(calls: int, hold_s: float, passes: float, prompt_tokens: int,
                 output_tokens: int, width: int) -> dict[str, float]:
    """The workload of `measure_held` through `sim.client.ClientCPU`: every expert request
    ready at 0 (item by item), each answer `hold_s` after its request leaves, a summarizer
    request once its item's experts are all handled. Deterministic arithmetic."""
    cpu = ClientCPU(recorded_cost(passes))
    items = max(1, calls // (width + 1))
    events: list[tuple[float, int, bool, int]] = []  # (time, seq, is_request, item)
    for seq in range(items * width):
        events.append((0.0, seq, True, seq // width))
    seq = len(events)
    experts_left = [width] * items
    end = work = 0.0
    conns = idle = 0.0  # summed over events, as the pool stands when the thread gets there
    while events:
        t, _, is_request, item = heapq.heappop(events)
        busy_from = cpu.free_at
        open_now, idle_now = cpu.pool_at(max(t, busy_from))
        conns, idle = conns + open_now, idle + idle_now
        if is_request:
            summarizer = experts_left[item] < 0
            done = cpu.request(t, prompt_tokens + (width * output_tokens if summarizer else 0))
            heapq.heappush(events, (done + hold_s, seq, False, item))
        else:
            done = cpu.response(t, output_tokens)
            if experts_left[item] > 0:
                experts_left[item] -= 1
                if experts_left[item] == 0:
                    experts_left[item] = -1  # the summarizer is on its way
                    heapq.heappush(events, (done, seq, True, item))
            else:
                end = max(end, done)
        work += done - max(t, busy_from)
        seq += 1
    n_calls = items * (width + 1)
    return {"makespan_s": round(end, 3), "cpu_ms_per_call": round(1e3 * work / n_calls, 3),
            "pool_mean_connections": round(conns / (2 * n_calls), 1),
            "pool_mean_idle": round(idle / (2 * n_calls), 1)}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m experiments.client_held",
                                 description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--calls", type=lambda s: [int(x) for x in s.split(",")],
                    default=[250, 1000, 2000, 3000], help="LLM calls per run (comma list)")
    ap.add_argument("--hold-ms", type=int, default=2000)
    ap.add_argument("--prompt-tokens", type=int, default=2000)
    ap.add_argument("--output-tokens", type=int, default=100)
    ap.add_argument("--width", type=int, default=4)
    ap.add_argument("--out", type=argparse.FileType("w"), default=None)
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from runtime.client_overhead.mock_server import mock_server

    args = parse_args(argv)
    os.environ.setdefault("LANGSMITH_TRACING", "false")
    started = datetime.datetime.now(datetime.UTC)
    rows = []
    with mock_server() as base_url:
        for calls in args.calls:
            m = asyncio.run(measure_held(base_url, calls, args.hold_ms, args.prompt_tokens,
                                         args.output_tokens, args.width))
            per_event = m["pool_passes_per_call"] / 2
            shape = (args.prompt_tokens, args.output_tokens, args.width)
            pred = {"no_pool": predict_held(calls, args.hold_ms / 1e3, 0.0, *shape),
                    "pool": predict_held(calls, args.hold_ms / 1e3, per_event, *shape)}
            rows.append({**m, "predicted_passes_per_event": per_event, "predicted": pred})
            log(f"  {m['calls']:5d} calls: measured wall {m['wall_s']:7.2f} s, cpu "
                f"{m['cpu_ms_per_call']:6.2f} ms/call, N max {m['pool_max_connections']}, "
                f"I mean {m['pool_mean_idle']}; predicted {pred['pool']['makespan_s']:7.2f} "
                f"s ({pred['no_pool']['makespan_s']:.2f} s without the pool)")
    report = {"what": __doc__.split("\n\n")[0] if __doc__ else "",
              "date": started.isoformat(timespec="seconds"),
              "command": " ".join(["python -m experiments.client_held", *(argv or [])]),
              "machine": machine_info(), "settings": {k: v for k, v in vars(args).items()
                                                      if k != "out"},
              "runs": rows}
    text = json.dumps(report, indent=1) + "\n"
    if args.out is not None:
        args.out.write(text)
    else:
        tmp = DEFAULT_OUT.with_suffix(".json.tmp")
        tmp.write_text(text)
        tmp.replace(DEFAULT_OUT)  # atomic
        log(f"wrote {DEFAULT_OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
