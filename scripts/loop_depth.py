"""How many event-loop iterations a baseline's client program takes along one call's path,
and the CPU it spends there: the `client_answer_hops`, `client_release_hop` and
`client_request_hops` of the event-loop client model (sim/client_loop.py;
docs/client_overhead.md, "the program's path through its loop").

    .venv/bin/python scripts/loop_depth.py [--systems langgraph,opwise,vllm]
        [--workflows reflect,mapred_mmlu,debate] [--queries 1]

Each program (runtime/programs, as `ServerSession` runs them) runs each workflow for one
query against the uvicorn mock server (instant answers), after a warm-up run, so one call
is in flight at a time and every loop iteration holds only this call's steps: the
iteration counts are the depth of the program's own await chains, not a queue. Counted
by wrapping asyncio's `BaseEventLoop._run_once`; marked, with the thread's CPU time, at
httpx's trace events (request headers sent, response headers read, response closed), at
the transport's entry (the request enters the pool) and when the workflow is told of the
answer (`CallBroker.finished`). Printed per segment: the median iterations and CPU ms
over the run's calls.

The model's parameters, per program (medians over the workflows): answer hops = response
headers read -> workflow told (the model reads an answer in an iteration and handles it
over the next ones); release hop = headers read -> response closed; request hops =
workflow told -> request enters the pool (at least 1: the model runs what a step spawns
in a later iteration; the QueryWise program sends its next call from the same task, 0).
"""

from __future__ import annotations

import argparse
import asyncio
import asyncio.base_events
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
from client_programs import mock_program, processor  # type: ignore[import-not-found]

from runtime.client_overhead.mock_server import mock_server
from runtime.programs.balancer import ShortestQueueTransport
from runtime.programs.broker import CallBroker
from runtime.server_session import HTTP_LIMITS
from runtime.tiny_model import tiny_model_dir
from runtime.tokenizer import HFTokenizer

TRACED = {"http11.send_request_headers.started": "sent",
          "http11.receive_response_headers.complete": "read",
          "http11.response_closed.complete": "closed"}
SEGMENTS = (("enter", "sent"), ("read", "closed"), ("closed", "told"), ("told", "enter"),
            ("read", "told"))

Mark = tuple[str, int, float]  # (event, loop iteration, thread CPU s)


class IterationCounter:
    """Counts the iterations of every asyncio event loop of this process while installed."""

    def __init__(self) -> None:
        self.n = 0
        self._orig: Callable[..., Any] | None = None

    def __enter__(self) -> IterationCounter:
        cls = asyncio.base_events.BaseEventLoop
        orig = self._orig = cls._run_once  # type: ignore[attr-defined]

        def counted(loop: Any) -> Any:
            self.n += 1
            return orig(loop)

        cls._run_once = counted  # type: ignore[attr-defined]
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.base_events.BaseEventLoop._run_once = self._orig  # type: ignore[attr-defined]


async def traced_run(url: str, system_name: str, workflow: str, queries: int,
                     tok: HFTokenizer, counter: IterationCounter) -> list[Mark]:
    """One run of the program; its marks in order."""
    marks: list[Mark] = []

    def mark(event: str) -> None:
        marks.append((event, counter.n, time.thread_time()))

    system, proc, cap = processor(system_name, workflow, queries, tok)

    class Traced(ShortestQueueTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            async def hook(name: str, info: Any) -> None:
                if name in TRACED:
                    mark(TRACED[name])

            request.extensions["trace"] = hook
            mark("enter")
            return await super().handle_async_request(request)

    class TracedBroker(CallBroker):
        def finished(self, result: Any) -> None:
            mark("told")
            super().finished(result)

    http, program = mock_program(url, system, proc, cap, tok,
                                 Traced([url], limits=HTTP_LIMITS), TracedBroker)
    try:
        await program.run(proc.plan.size)
    finally:
        await http.aclose()
    return marks


def segments(marks: list[Mark]) -> dict[str, tuple[float, float, int]]:
    """Per segment (a -> b: each `a` to the first `b` after it): median iterations, median
    CPU ms, and how many."""
    out = {}
    for a, b in SEGMENTS:
        spans = []
        for i, (event, it, cpu) in enumerate(marks):
            if event != a:
                continue
            nxt = next((m for m in marks[i + 1:] if m[0] == b), None)
            if nxt is not None:
                spans.append((nxt[1] - it, 1e3 * (nxt[2] - cpu)))
        if spans:
            out[f"{a}->{b}"] = (statistics.median(s[0] for s in spans),
                                statistics.median(s[1] for s in spans), len(spans))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--systems", default="langgraph,opwise,vllm")
    ap.add_argument("--workflows", default="reflect,mapred_mmlu,debate")
    ap.add_argument("--queries", type=int, default=1)
    args = ap.parse_args()
    os.environ.setdefault("LANGSMITH_TRACING", "false")
    tok = HFTokenizer.from_dir(tiny_model_dir())
    with mock_server(server="uvicorn") as url, IterationCounter() as counter:
        for system_name in args.systems.split(","):
            for workflow in args.workflows.split(","):
                asyncio.run(traced_run(url, system_name, workflow, args.queries, tok,
                                       counter))  # warm-up: imports, first connections
                marks = asyncio.run(traced_run(url, system_name, workflow, args.queries,
                                               tok, counter))
                print(f"{system_name} {workflow}: "
                      f"{sum(m[0] == 'enter' for m in marks)} calls")
                for name, (its, ms, n) in segments(marks).items():
                    print(f"    {name:14s} {its:5.1f} iterations {ms:7.2f} ms CPU  (n={n})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
