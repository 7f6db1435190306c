"""The baselines' real client programs (runtime/programs, as `ServerSession` runs them)
against the mock OpenAI server instead of vLLM: their client CPU per call with no model
behind the server, on either mock server (docs/client_overhead.md, "the server").

    .venv/bin/python scripts/client_programs.py [--systems langgraph,opwise]
        [--workflows mapred_mmlu,debate] [--batch 256] [--hold-ms 2000]
        [--servers asyncio,uvicorn] [--repeats 1] [--split] [--keepalive 5]

Shapes as `+experiment=validate_sim_systems` runs them (validate_sim's planner and
workflow parameters, tiny tokenizer, its output cap; the client library built as
`ServerSession` builds it), so the numbers sit beside that validation's
`real_client_cpu_ms_per_call`. The mock's answers carry no token ids, so the programs
count every reply as an output mismatch and later prompts are shorter than on vLLM; the
CPU that matters here is the client's per call.

`--split` also says where within a call the client spends it: the mock notes every
request's arrival with the client's CPU at that moment (`runtime.client_overhead.measure.
send_side`): the CPU before the first arrival, over the first flush of arrivals, is the
send side of a call (`send_ms`); `share` = send_ms / CPU per call over the run.

`--keepalive S` sets the client pool's keep-alive expiry (httpx's default, which the
reference programs keep, is 5 s; the mock's uvicorn also closes idle connections after
5 s, as vLLM's server does): a shorter one shows how much of a program's time and CPU
waits on idle connections expiring (docs/client_overhead.md, "the pile-up").
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from experiments.compose import compose_once, system_settings
from experiments.validate_sim import DEFAULT_WORKFLOWS, planner
from helium_lab.processor.capping import capped
from runtime.client_overhead.measure import send_side
from runtime.client_overhead.mock_server import SERVERS, fetch_arrivals, mock_server
from runtime.programs.balancer import ShortestQueueTransport
from runtime.programs.broker import CallBroker
from runtime.server_session import HTTP_LIMITS, HTTP_TIMEOUT, PROGRAMS, library_client
from runtime.tiny_model import tiny_model_dir
from runtime.tokenizer import HFTokenizer


def processor(system_name: str, workflow: str, batch: int, tok: HFTokenizer
              ) -> tuple[Any, Any, int]:
    """(system, processor, output cap) as validate_sim plans the workflow for the system."""
    cfg = compose_once(["+experiment=validate_sim", f"system={system_name}"])
    system, _, _ = system_settings(system_name)
    if system.program is None:
        raise SystemExit(f"{system_name} has no client program (system.program)")
    make = planner(workflow, DEFAULT_WORKFLOWS[workflow], cfg, system, batch)
    return system, make(tok, program_runs=True), int(cfg["validate_sim"]["max_output_tokens"])


def mock_program(url: str, system: Any, proc: Any, cap: int, tok: HFTokenizer,
                 transport: ShortestQueueTransport,
                 broker_cls: type[CallBroker] = CallBroker) -> tuple[httpx.AsyncClient, Any]:
    """The system's client program over `transport` to the mock at `url` (as
    `ServerSession` builds it), and its HTTP client (the caller closes it)."""
    http = httpx.AsyncClient(transport=transport, timeout=HTTP_TIMEOUT)
    cls, library = PROGRAMS[system.program]
    program = cls(proc.graph, broker_cls(capped(proc, cap), lambda: proc.issued),
                  library_client(library, http, "mock", url), transport, tok,
                  time.perf_counter, model="mock")
    return http, program


async def one_run(url: str, system_name: str, workflow: str, batch: int,
                  tok: HFTokenizer, keepalive_s: float = 5.0) -> dict[str, Any]:
    system, proc, cap = processor(system_name, workflow, batch, tok)
    limits = httpx.Limits(max_connections=HTTP_LIMITS.max_connections,
                          max_keepalive_connections=HTTP_LIMITS.max_keepalive_connections,
                          keepalive_expiry=keepalive_s)
    http, program = mock_program(url, system, proc, cap, tok,
                                 ShortestQueueTransport([url], limits=limits))
    cpu0, wall0 = time.process_time(), time.perf_counter()
    ran = await program.run(proc.plan.size)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    await http.aclose()
    calls = len(ran.records)
    return {"calls": calls, "cpu_ms_per_call": 1e3 * cpu / calls, "wall_s": wall,
            "cpu_start_s": cpu0}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--systems", default="langgraph,opwise")
    ap.add_argument("--workflows", default="mapred_mmlu,debate")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--hold-ms", type=int, default=2000)
    ap.add_argument("--servers", default=",".join(SERVERS))
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--split", action="store_true",
                    help="also measure the send side of a call (module docstring)")
    ap.add_argument("--keepalive", type=float, default=HTTP_LIMITS.keepalive_expiry,
                    help="the client pool's keep-alive expiry, s (module docstring)")
    args = ap.parse_args()
    os.environ.setdefault("LANGSMITH_TRACING", "false")
    tok = HFTokenizer.from_dir(tiny_model_dir())
    results: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for server in args.servers.split(","):
        with mock_server(server=server, record_arrivals=args.split) as base:
            url = base.replace("/v1", f"/hold/{args.hold_ms}/v1")
            for system_name in args.systems.split(","):  # imports, graph building, pools:
                for workflow in args.workflows.split(","):  # one-time costs, not measured
                    asyncio.run(one_run(base, system_name, workflow, 2, tok))
            if args.split:
                fetch_arrivals(base)
            for _ in range(args.repeats):
                for system_name in args.systems.split(","):
                    for workflow in args.workflows.split(","):
                        r = asyncio.run(one_run(url, system_name, workflow, args.batch, tok,
                                                 args.keepalive))
                        split = ""
                        if args.split:
                            r |= send_side(fetch_arrivals(base), r['cpu_start_s'], r['calls'],
                                           r['cpu_ms_per_call'], args.hold_ms / 1e3)
                            split = (f"; {r['pre_cpu_s']:.2f} s CPU before the first "
                                     f"arrival, then {r['flush_calls']:.0f} in "
                                     f"{r['flush_wall_ms']:.0f} ms ({r['window_calls']:.0f} "
                                     f"and {r['window_cpu_s']:.2f} s CPU before the first "
                                     f"answer): send {r['send_ms']:.2f} ms/call, "
                                     f"share {r['share']:.2f}")
                        results.setdefault((server, system_name, workflow), []).append(r)
                        print(f"{server:8s} {system_name:10s} {workflow:12s} {r['calls']} calls: "
                              f"{r['cpu_ms_per_call']:6.2f} ms/call, wall {r['wall_s']:.1f} s"
                              f"{split}", flush=True)
    print("medians:")
    for (server, system_name, workflow), runs in results.items():
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0] if k != "calls"}
        extra = (f", send {med['send_ms']:.2f} ms/call, share {med['share']:.2f}"
                 if "share" in med else "")
        print(f"  {server:8s} {system_name:10s} {workflow:12s} "
              f"{med['cpu_ms_per_call']:6.2f} ms/call{extra}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
