"""Trace httpcore's connection pool through one held run of a client program: what
`sim/client_loop.py` models (docs/client_overhead.md, "the pile-up").

    .venv/bin/python scripts/pool_trace.py [--kind openai_chain] [--calls 1000]
        [--hold-ms 2000] [--keepalive 5] [--show 2]

Runs `runtime.client_overhead.held`'s workload `--kind` (langgraph_mapred, openai,
openai_chain) against the uvicorn mock holding every answer `--hold-ms`, after a warm-up
of 10 calls, with the client pool's keep-alive expiry `--keepalive` (httpx's default: 5 s).
Prints, per second of the run: the pool's assignment passes, connections N, idle ones I,
requests in the pool and how many distinct connections they are assigned; per second of
entry: the requests' median and longest wait from entering the pool to starting on a
connection, their refusals (`ConnectionNotAvailable`) and connections opened; and the
event log of the `--show` requests that waited longest (assignments, request-lock entries,
state checks with the state found).

Instruments private attributes of httpcore 1.0.9 (the pin of the `clients` extra) by
wrapping three methods for the duration of the run.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpcore._async.connection as connection_mod
import httpcore._async.connection_pool as pool_mod
import httpcore._async.http11 as http11_mod

from runtime.client_overhead.drivers import pool_of
from runtime.client_overhead.measure import make_driver
from runtime.client_overhead.mock_server import mock_server
from runtime.client_overhead.workloads import Tally


class Tracer:
    """Wraps httpcore's pool entry, assignment, connection entry and HTTP/1.1 state check
    while `on`; times are seconds from `t0`."""

    def __init__(self) -> None:
        self.on = False
        self.t0 = 0.0
        self.requests: dict[int, dict[str, Any]] = {}  # id(httpcore Request) -> its log
        self.passes: list[tuple[float, int, int, int, int]] = []

    def now(self) -> float:
        return time.perf_counter() - self.t0

    def install(self, pool: Any) -> None:
        tracer = self
        enter = pool_mod.AsyncConnectionPool.handle_async_request
        assign = pool_mod.AsyncPoolRequest.assign_to_connection
        wrapper = connection_mod.AsyncHTTPConnection.handle_async_request
        check = http11_mod.AsyncHTTP11Connection.handle_async_request
        assign_pass = pool._assign_requests_to_connections

        async def traced_enter(self: Any, request: Any) -> Any:
            if tracer.on:
                tracer.requests[id(request)] = {"enter": tracer.now(), "events": [],
                                                "refused": 0, "opened": 0, "start": None}
            return await enter(self, request)

        def traced_assign(self: Any, conn: Any) -> None:
            log = tracer.requests.get(id(self.request))
            if log is not None:
                new = conn._connection is None
                log["opened"] += new
                log["events"].append((round(tracer.now(), 3), "assigned",
                                      id(conn) % 10_000, "new" if new
                                      else conn._connection._state.name.lower()))
            assign(self, conn)

        async def traced_wrapper(self: Any, request: Any) -> Any:
            log = tracer.requests.get(id(request))
            if log is not None:
                log["events"].append((round(tracer.now(), 3), "request lock",
                                      id(self) % 10_000))
            return await wrapper(self, request)

        async def traced_check(self: Any, request: Any) -> Any:
            log = tracer.requests.get(id(request))
            if log is not None:
                state = self._state
                ok = state in (http11_mod.HTTPConnectionState.NEW,
                               http11_mod.HTTPConnectionState.IDLE)
                log["events"].append((round(tracer.now(), 3), "state check",
                                      state.name.lower()))
                if ok and log["start"] is None:
                    log["start"] = tracer.now()
                log["refused"] += not ok
            return await check(self, request)

        def traced_pass() -> Any:
            if tracer.on:
                conns = pool._connections
                on = {id(r.connection) for r in pool._requests if r.connection is not None}
                tracer.passes.append((tracer.now(), len(conns),
                                      sum(1 for c in conns if c.is_idle()),
                                      len(pool._requests), len(on)))
            return assign_pass()

        pool_mod.AsyncConnectionPool.handle_async_request = traced_enter  # type: ignore[method-assign]
        pool_mod.AsyncPoolRequest.assign_to_connection = traced_assign  # type: ignore[method-assign,assignment]
        connection_mod.AsyncHTTPConnection.handle_async_request = traced_wrapper  # type: ignore[method-assign]
        http11_mod.AsyncHTTP11Connection.handle_async_request = traced_check  # type: ignore[method-assign]
        pool._assign_requests_to_connections = traced_pass


async def traced_run(base_url: str, args: argparse.Namespace, tracer: Tracer
                     ) -> tuple[float, float, int]:
    """The warm-up, then the traced batch: (wall s, CPU ms per call, calls)."""
    import runtime.client_overhead.drivers as drivers

    plain = drivers.async_http
    drivers.async_http = lambda url, keepalive_expiry=5.0: plain(url, args.keepalive)  # type: ignore[assignment]
    try:
        driver = make_driver(args.kind, base_url.replace("/v1", f"/hold/{args.hold_ms}/v1"),
                             4)
    finally:
        drivers.async_http = plain
    try:
        await driver.run(10, 2000, 100, None, Tally())
        tracer.install(pool_of(driver.http))
        gc.collect()
        tally = Tally()
        tracer.on, tracer.t0 = True, time.perf_counter()
        c0 = time.process_time()
        await driver.run(args.calls, 2000, 100, None, tally)
        wall, cpu = tracer.now(), time.process_time() - c0
        tracer.on = False
    finally:
        await driver.aclose()
    return wall, 1e3 * cpu / max(1, tally.calls), tally.calls


def report(tracer: Tracer, show: int) -> None:
    by_second: dict[int, list[tuple[float, int, int, int, int]]] = defaultdict(list)
    for p in tracer.passes:
        by_second[int(p[0])].append(p)
    print(" s  passes      N      I  requests  on connections")
    for sec in sorted(by_second):
        ps = by_second[sec]
        means = [statistics.fmean(p[k] for p in ps) for k in (1, 2, 3, 4)]
        print(f"{sec:2d} {len(ps):7d} {means[0]:6.1f} {means[1]:6.1f} {means[2]:9.1f} "
              f"{means[3]:15.1f}")
    entered: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for log in tracer.requests.values():
        entered[int(log["enter"])].append(log)
    print("\nentered  requests  wait median  longest  refusals  opened")
    for sec in sorted(entered):
        logs = entered[sec]
        waits = [lg["start"] - lg["enter"] for lg in logs if lg["start"] is not None]
        print(f"{sec:7d} {len(logs):9d} {statistics.median(waits):12.3f} {max(waits):8.3f} "
              f"{statistics.fmean(lg['refused'] for lg in logs):9.1f} "
              f"{statistics.fmean(lg['opened'] for lg in logs):7.2f}")
    started = [lg for lg in tracer.requests.values() if lg["start"] is not None]
    for lg in sorted(started, key=lambda x: x["start"] - x["enter"], reverse=True)[:show]:
        print(f"\nentered {lg['enter']:.3f} s, started {lg['start']:.3f} s:")
        for event in lg["events"]:
            print("   ", *event)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--kind", default="openai_chain",
                    choices=("langgraph_mapred", "openai", "openai_chain"))
    ap.add_argument("--calls", type=int, default=1000)
    ap.add_argument("--hold-ms", type=int, default=2000)
    ap.add_argument("--keepalive", type=float, default=5.0,
                    help="the client pool's keep-alive expiry, s")
    ap.add_argument("--show", type=int, default=2,
                    help="print the event logs of this many longest-waiting requests")
    args = ap.parse_args()
    os.environ.setdefault("LANGSMITH_TRACING", "false")
    tracer = Tracer()
    with mock_server(server="uvicorn") as base_url:
        wall, cpu_ms, calls = asyncio.run(traced_run(base_url, args, tracer))
    print(f"{args.kind}: {calls} calls, hold {args.hold_ms} ms, keep-alive {args.keepalive} "
          f"s: wall {wall:.2f} s, {cpu_ms:.2f} ms of client CPU per call (traced)\n")
    report(tracer, args.show)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
