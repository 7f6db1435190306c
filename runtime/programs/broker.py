"""Hands a processor's rendered calls to a client program that decides when each runs.

A real client program (LangGraph's `abatch`, runtime/programs) owns the dispatch order:
its node for op `o` of query `q` runs when the library decides. The prompt of that call,
and its output length, are still the planner's (`QueryProcessor` renders it from the
query's inputs and upstream outputs, tokenized piece by piece), so every system runs the
same calls and greedy outputs stay comparable. The broker joins the two: the processor
emits a call once its inputs are known (`start`, `finished`); the program awaits the call
of the node it is running (`call`). Calls the processor emits before the program asks wait
in `_ready`; a program asking first waits on a future.

The processor must emit every call no later than the program can ask for it (its own
gates implied by the program's: true for `ready` and for `supersteps` under LangGraph),
or the program waits for it; a call asked for that the run does not issue is an error.
No clock is read here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from helium_lab.backend import Processor
from helium_lab.processor.calls import CallResult, LLMCall

CallKey = tuple[str, int]


class CallBroker:
    """The calls of one run, by (op id, query) (see the module docstring)."""

    def __init__(self, proc: Processor,
                 issued: Callable[[], frozenset[CallKey]] | None = None) -> None:
        """`issued()`: the calls the run issues, asked after `start` (None: every call)."""
        self.proc = proc
        self.issued = issued
        self._ready: dict[CallKey, LLMCall] = {}
        self._waiting: dict[CallKey, asyncio.Future[LLMCall]] = {}
        self.emitted = 0

    def start(self) -> None:
        self._emit(self.proc.start())

    def runs(self, op: str, query: int) -> bool:
        """Whether the run issues the call of `op` for `query`."""
        return self.issued is None or (op, query) in self.issued()

    async def call(self, op: str, query: int) -> LLMCall:
        key = (op, query)
        if not self.runs(op, query):
            raise KeyError(f"the run issues no call for op {op!r}, query {query}")
        got = self._ready.pop(key, None)
        if got is not None:
            return got
        fut: asyncio.Future[LLMCall] = asyncio.get_running_loop().create_future()
        self._waiting[key] = fut
        return await fut

    def finished(self, result: CallResult) -> None:
        self._emit(self.proc.on_finished(result))

    def _emit(self, calls: list[LLMCall]) -> None:
        for call in calls:
            self.emitted += 1
            key = (call.op, call.query)
            fut = self._waiting.pop(key, None)
            if fut is None:
                self._ready[key] = call
            else:
                fut.set_result(call)
