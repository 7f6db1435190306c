"""The client programs at the paper's concurrency: their CPU per call and wall time with
hundreds of calls in flight, and the simulator's client model checked against them.

`runtime.client_overhead.held.measure_held` runs a client against the mock server holding
every answer `hold_ms`: LangGraph MapRed (`langgraph_mapred`: 4 experts then a summarizer
per item, one `abatch`), AsyncOpenAI (`openai`: every call gathered at once) and AsyncOpenAI
chains (`openai_chain`: OpWise's stages). Per client, `--repeats` runs of `--hold-ms` over
`--calls` and of the other holds `--check-hold-ms` at `--check-calls`; then
**predictions**: `predict_held` runs each run's workload (its warm-up first, as the
measurement does) through the simulator's client: the event loop and connection pool of
`sim/client_loop.py` with the recorded one-call constants and part 2's pass fit, nothing
fitted to these runs (and, for reference, the serial thread at the one-call cost).

    python -m experiments.client_held                   # ≈ 25 min on 2 cores
    python -m experiments.client_held --predict-only    # recompute predictions (seconds)

Results go to ``conf/orchestration/client_held.json``; docs/client_overhead.md part 4.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import heapq
import json
import os
import statistics
from pathlib import Path
from typing import Any

from experiments.compose import system_settings
from helium_lab.io import atomic_write_text
from runtime.client_overhead.cli import machine_info
from runtime.client_overhead.held import measure_held
from runtime.client_overhead.measure import log
from runtime.client_overhead.mock_server import SERVERS
from runtime.client_overhead.workloads import REPO_ROOT
from sim.client import ClientCost, ClientCPU, PoolCost

DEFAULT_OUT = REPO_ROOT / "conf" / "orchestration" / "client_held.json"
RECORDED = REPO_ROOT / "conf" / "orchestration" / "client_overhead.json"
KINDS = ("langgraph_mapred", "openai", "openai_chain")
# how each client's held workload is shaped (`predict_held`): MapRed items, one flat
# gathered batch, or chains of width + 1 calls per item (OpWise's stages)
SHAPES = {"langgraph_mapred": "mapred", "openai": "flat", "openai_chain": "chain"}


def recorded_cost(kind: str,
                  concurrency: tuple[tuple[float, float], ...] = (),
                  pool: PoolCost | None = None) -> ClientCost:
    """`ClientCost` of client `kind` from the recorded report (part 1's one-call-in-flight
    constants; a chain of AsyncOpenAI calls has AsyncOpenAI's), with a `concurrency` curve
    or a `pool` (the event loop model)."""
    keys = json.loads(RECORDED.read_text())["orchestration_keys_this_machine"]
    k = keys[kind.removesuffix("_chain")]
    return ClientCost(call_s=k["client_call_s"], prompt_token_s=k["client_prompt_token_s"],
                      output_token_s=k["client_output_token_s"], concurrency=concurrency,
                      pool=pool)


# the system whose client program each held client is: its loop hops (conf/system/client)
SYSTEM_OF = {"langgraph_mapred": "langgraph", "openai": "opwise", "openai_chain": "opwise"}


def recorded_pool(keepalive_s: float = 5.0, kind: str | None = None) -> PoolCost:
    """Part 2's pass fit (conf/orchestration/client_overhead.json "pool_fit") with httpx's
    default keep-alive; with a client `kind`, the loop hops its system configures
    (`SYSTEM_OF`; scripts/loop_depth.py measured them), else one hop each."""
    fit = json.loads(RECORDED.read_text())["pool_fit"]
    hops: tuple[int, ...] = ()
    if kind is not None:
        orch = system_settings(SYSTEM_OF[kind])[0].orchestration
        hops = tuple(int(orch.get(k, 1)) for k in ("client_answer_hops", "client_release_hop",
                                                   "client_request_hops"))
    return PoolCost(keepalive_s, *(1e-6 * fit[k] for k in ("c0_us", "c_conn_us",
                                                          "c_idle_us", "c_pair_us")), *hops)


def predict_held(cost: ClientCost, calls: int, hold_s: float, prompt_tokens: int,
                 output_tokens: int, width: int, shape: str = "mapred") -> dict[str, float]:
    """The workload of `measure_held` through the client of `cost`: with a pool, its event
    loop (`_loop_held`); else `sim.client.ClientCPU`, every first-stage
    request ready at 0 (item by item), each answer `hold_s` after its request leaves;
    `shape` "mapred" (`width` > 0): a summarizer request once its item's `width` experts
    are handled; "flat" (or `width` 0): none; "chain": each item's `width` + 1 calls one
    after another. The makespan is when the last answer is handled. Deterministic
    arithmetic."""
    if shape not in set(SHAPES.values()):
        raise ValueError(f"predict_held: shape {shape!r}, choose one of "
                         f"{', '.join(sorted(set(SHAPES.values())))}")
    if cost.pool is not None:
        return _loop_held(cost, calls, hold_s, prompt_tokens, output_tokens, width, shape)
    if shape == "chain":
        items = max(1, calls // (width + 1))
        left = [width + 1] * items
        first = [(item, prompt_tokens) for item in range(items)]
        n_calls = items * (width + 1)

        def follow(item: int) -> int | None:
            left[item] -= 1
            return prompt_tokens + output_tokens if left[item] else None
    else:
        width = 0 if shape == "flat" else width
        items = max(1, calls // (width + 1)) if width else calls
        experts_left = [width] * items
        first = [(seq // max(width, 1), prompt_tokens) for seq in range(items * max(width, 1))]
        n_calls = items * (width + 1) if width else calls

        def follow(item: int) -> int | None:
            if experts_left[item] <= 0:
                return None
            experts_left[item] -= 1
            if experts_left[item]:
                return None
            experts_left[item] = -1  # the summarizer is on its way
            return prompt_tokens + width * output_tokens

    end, work, in_flight = _replay_held(ClientCPU(cost), first, hold_s, output_tokens, follow)
    return {"makespan_s": round(end, 3), "cpu_ms_per_call": round(1e3 * work / n_calls, 3),
            "mean_in_flight": round(in_flight / (2 * n_calls), 1)}


def _loop_held(cost: ClientCost, calls: int, hold_s: float, prompt_tokens: int,
               output_tokens: int, width: int, shape: str) -> dict[str, float]:
    """`predict_held` through `sim.client_loop.ClientLoop`: the measurement's warm-up
    (2 (width + 1) calls at once) first, then the batch of `shape`, each answer `hold_s`
    after its request started; makespan, CPU and pool passes of the batch alone."""
    import simpy

    from sim.client_loop import ClientLoop

    assert cost.pool is not None
    env = simpy.Environment()
    loop = ClientLoop(env, cost, cost.pool)
    mark: dict[str, float] = {"end": 0.0}

    def call(tokens: int) -> Any:
        req = loop.request(tokens)
        yield req.sent
        yield env.timeout(hold_s)
        yield loop.answer(req, output_tokens)

    def item(first: int) -> Any:
        if shape == "chain":
            tokens = prompt_tokens
            for _ in range(width + 1):
                yield from call(tokens)
                tokens = prompt_tokens + output_tokens
        elif shape == "mapred" and width:
            yield env.all_of([env.process(call(prompt_tokens)) for _ in range(first)])
            yield from call(prompt_tokens + width * output_tokens)
        else:
            yield from call(prompt_tokens)
        mark["end"] = max(mark["end"], env.now)

    items = calls if shape == "flat" or not width else max(1, calls // (width + 1))
    n_calls = items if shape == "flat" or not width else items * (width + 1)

    def run() -> Any:
        yield env.all_of([env.process(call(prompt_tokens)) for _ in range(2 * (width + 1))])
        mark.update(start=env.now, cpu=loop.busy_s, passes=loop.passes)
        for _ in range(items):
            env.process(item(width))

    env.process(run())
    env.run()
    return {"makespan_s": round(mark["end"] - mark["start"], 3),
            "cpu_ms_per_call": round(1e3 * (loop.busy_s - mark["cpu"]) / n_calls, 3),
            "passes_per_call": round((loop.passes - mark["passes"]) / n_calls, 2)}


def _replay_held(cpu: ClientCPU, first: list[tuple[int, int]], hold_s: float,
                 output_tokens: int, follow: Any) -> tuple[float, float, int]:
    """Requests `first` ((item, prompt tokens)) at 0, each answered `hold_s` after it
    leaves the client; once an answer is handled, `follow(item)` gives the prompt tokens of
    the item's next request, or None. Returns (last answer handled, client CPU seconds,
    calls in flight summed over the events)."""
    events = [(0.0, seq, True, item, tokens) for seq, (item, tokens) in enumerate(first)]
    seq = len(events)
    end = work = 0.0
    in_flight = 0
    while events:
        t, _, is_request, item, tokens = heapq.heappop(events)
        busy_from = cpu.free_at
        in_flight += cpu.in_flight
        if is_request:
            done = cpu.request(t, tokens)
            heapq.heappush(events, (done + hold_s, seq, False, item, 0))
        else:
            done = cpu.response(t, output_tokens)
            nxt = follow(item)
            if nxt is None:
                end = max(end, done)
            else:
                heapq.heappush(events, (done, seq, True, item, nxt))
        work += done - max(t, busy_from)
        seq += 1
    return end, work, in_flight


def predictions(report: dict[str, Any]) -> dict[str, Any]:
    """Each run's predicted makespan through the event loop model and, for reference,
    through the serial thread at the one-call cost."""
    st = report["settings"]
    shape = (st["prompt_tokens"], st["output_tokens"])
    pools = {kind: recorded_pool(kind=kind) for kind in KINDS}
    for run in report["runs"]:
        kind = run["kind"]
        args = (run["calls"], run["hold_ms"] / 1e3, *shape, st["width"], SHAPES[kind])
        run["predicted"] = {"event_loop": predict_held(recorded_cost(kind, pool=pools[kind]),
                                                       *args),
                            "one_in_flight": predict_held(recorded_cost(kind), *args)}
        run["error_event_loop"] = round(
            run["predicted"]["event_loop"]["makespan_s"] / run["wall_s"] - 1, 3)
        run.pop("error_curve", None)
    return report


def medians(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Per client, calls and hold: the repeats' median wall, CPU per call, pool passes per
    call and makespan errors of the two predictions, and the spread of the wall (max / min
    - 1)."""
    groups: dict[tuple[str, int, int, str], list[dict[str, Any]]] = {}
    for r in report["runs"]:
        groups.setdefault((r["kind"], r["calls"], r["hold_ms"], r["role"]), []).append(r)
    rows = []
    for (kind, calls, hold, role), runs in sorted(groups.items()):
        walls = [r["wall_s"] for r in runs]
        wall = statistics.median(walls)
        loop = runs[0]["predicted"]["event_loop"]
        one_s = runs[0]["predicted"]["one_in_flight"]["makespan_s"]
        rows.append({"kind": kind, "calls": calls, "hold_ms": hold, "role": role,
                     "repeats": len(runs), "wall_s": round(wall, 2),
                     "wall_spread": round(max(walls) / min(walls) - 1, 3),
                     "cpu_ms_per_call": round(statistics.median(
                         r["cpu_ms_per_call"] for r in runs), 2),
                     "passes_per_call": round(statistics.median(
                         r["pool_passes_per_call"] for r in runs), 2),
                     "predicted_s": loop["makespan_s"],
                     "predicted_cpu_ms_per_call": loop["cpu_ms_per_call"],
                     "predicted_passes_per_call": loop["passes_per_call"],
                     "error": round(loop["makespan_s"] / wall - 1, 3),
                     "predicted_one_in_flight_s": one_s,
                     "error_one_in_flight": round(one_s / wall - 1, 3)})
    return rows


def summary_lines(report: dict[str, Any]) -> list[str]:
    """A table of every run: measured wall and CPU per call beside the predictions."""
    lines = ["kind              calls hold_s  role   wall_s  cpu_ms  in_pool  pred_s  err  "
             "pred_cpu_ms  pred_1_s"]
    for r in report["runs"]:
        p = r["predicted"]
        lines.append(f"{r['kind']:17s} {r['calls']:5d} {r['hold_ms'] / 1e3:5.1f}  "
                     f"{r['role']:5s} {r['wall_s']:7.2f} {r['cpu_ms_per_call']:7.2f} "
                     f"{r['pool_mean_requests']:7.1f} {p['event_loop']['makespan_s']:7.2f} "
                     f"{r['error_event_loop']:+.2f} "
                     f"{p['event_loop']['cpu_ms_per_call']:9.2f} "
                     f"{p['one_in_flight']['makespan_s']:7.2f}")
    return lines


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    def ints(s: str) -> list[int]:
        return [int(x) for x in s.split(",")]

    ap = argparse.ArgumentParser(prog="python -m experiments.client_held",
                                 description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--kinds", type=lambda s: s.split(","), default=list(KINDS))
    ap.add_argument("--calls", type=ints, default=[25, 100, 250, 1000, 2000],
                    help="fit runs: LLM calls per run (comma list)")
    ap.add_argument("--hold-ms", type=int, default=2000, help="fit runs' hold")
    ap.add_argument("--check-calls", type=ints, default=[1000])
    ap.add_argument("--check-hold-ms", type=ints, default=[500, 5000])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--prompt-tokens", type=int, default=2000)
    ap.add_argument("--output-tokens", type=int, default=100)
    ap.add_argument("--width", type=int, default=4)
    ap.add_argument("--server", choices=SERVERS, default="uvicorn",
                    help="the mock server (uvicorn: vLLM's HTTP server; asyncio: the bare "
                         "loop of the 2026-12-06 curves, which costs the clients 1.6-2.1x "
                         "what real vLLM does, docs/client_overhead.md)")
    ap.add_argument("--predict-only", action="store_true",
                    help="recompute the predictions of the report at --out")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--waves", type=int, default=None, metavar="CALLS",
                    help="only compare answers held --hold-ms each with answers released "
                         "together every --hold-ms (as an engine ends a batch), at CALLS "
                         "calls; prints, writes nothing")
    return ap.parse_args(argv)


def measure(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every fit and held-out run, repeats interleaved (drift spreads over all sizes)."""
    from runtime.client_overhead.mock_server import mock_server

    plan = [(kind, calls, args.hold_ms, "fit") for kind in args.kinds for calls in args.calls]
    plan += [(kind, calls, hold, "check") for kind in args.kinds
             for calls in args.check_calls for hold in args.check_hold_ms]
    rows = []
    with mock_server(server=args.server) as base_url:
        for rep in range(args.repeats):
            for kind, calls, hold, role in plan:
                m = asyncio.run(measure_held(base_url, calls, hold, args.prompt_tokens,
                                             args.output_tokens, args.width, kind))
                rows.append({**m, "role": role, "repeat": rep})
                log(f"  [{rep + 1}/{args.repeats}] {kind} {calls} calls, hold {hold} ms: "
                    f"wall {m['wall_s']:.2f} s, {m['cpu_ms_per_call']:.2f} ms/call, "
                    f"{m['pool_mean_requests']} in the pool")
    return rows


def compare_waves(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Each client at `args.waves` calls with answers held, then released in waves."""
    from runtime.client_overhead.mock_server import mock_server

    rows = []
    with mock_server(server=args.server) as base_url:
        for rep in range(args.repeats):
            for kind in args.kinds:
                for release in ("hold", "wave"):
                    m = asyncio.run(measure_held(base_url, args.waves, args.hold_ms,
                                                 args.prompt_tokens, args.output_tokens,
                                                 args.width, kind, release))
                    rows.append({**m, "repeat": rep})
                    log(f"  [{rep + 1}/{args.repeats}] {kind} {release} {args.hold_ms} ms: "
                        f"{m['cpu_ms_per_call']:.2f} ms/call, {m['pool_passes_per_call']} "
                        f"passes/call, mean connections {m['pool_mean_connections']}, "
                        f"idle {m['pool_mean_idle']} (max {m['pool_max_idle']})")
    for kind in args.kinds:
        for release in ("hold", "wave"):
            cpu = [r["cpu_ms_per_call"] for r in rows
                   if r["kind"] == kind and r["release"] == release]
            log(f"median {kind:17s} {release}: {statistics.median(cpu):.2f} ms/call")
    return rows


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("LANGSMITH_TRACING", "false")
    if args.waves is not None:
        compare_waves(args)
        return 0
    if args.predict_only:
        report = json.loads(args.out.read_text())
    else:
        started = datetime.datetime.now(datetime.UTC)
        settings = {k: v for k, v in vars(args).items() if k not in ("out", "predict_only")}
        report = {"what": __doc__.split("\n\n")[0] if __doc__ else "",
                  "date": started.isoformat(timespec="seconds"),
                  "command": " ".join(["python -m experiments.client_held", *(argv or [])]),
                  "machine": machine_info(), "settings": settings, "runs": measure(args)}
    report.pop("curves", None)  # the calls-in-flight curves of the serial model, retired
    report = predictions(report)
    report["medians"] = medians(report)
    for line in summary_lines(report):
        log(line)
    for m in report["medians"]:
        log(f"median {m['kind']:17s} {m['calls']:5d} {m['hold_ms']:5d} ms {m['role']:5s} "
            f"wall {m['wall_s']:6.2f} s (spread {m['wall_spread']:.2f}), "
            f"{m['cpu_ms_per_call']:5.2f} ms/call; predicted {m['predicted_s']:6.2f} s "
            f"({m['error']:+.2f}), {m['predicted_cpu_ms_per_call']:5.2f} ms/call; one in "
            f"flight {m['predicted_one_in_flight_s']:6.2f} s "
            f"({m['error_one_in_flight']:+.2f})")
    atomic_write_text(args.out, json.dumps(report, indent=1) + "\n")
    log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
