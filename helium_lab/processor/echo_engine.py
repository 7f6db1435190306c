"""An in-memory engine and driver for tests: finishes calls in submission order.

Outputs come from `synthetic_output`, a deterministic function of the prompt, so any two
executions that render the same prompts produce the same final outputs; the logical clock
advances one unit per completion.
"""

from __future__ import annotations

from collections import deque

from helium_lab.backend import BackendResult
from helium_lab.processor.calls import CallResult, LLMCall, synthetic_completion
from helium_lab.processor.query_processor import QueryProcessor
from helium_lab.tokenizer import Tokenizer


class EchoEngine:
    """Null engine: no batching, no cache; `cached_tokens` is always 0."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tok = tokenizer
        self.queue: deque[tuple[LLMCall, float]] = deque()
        self.prewarmed: list[tuple[int, ...]] = []
        self.clock = 0.0

    def submit(self, call: LLMCall) -> None:
        self.queue.append((call, self.clock))

    def prewarm(self, prompt_ids: tuple[int, ...]) -> None:
        self.prewarmed.append(prompt_ids)

    def stats(self) -> dict[str, float]:
        return {"queued": float(len(self.queue))}

    def step(self) -> CallResult:
        call, submitted = self.queue.popleft()
        text, ids = synthetic_completion(call, self.tok)
        t0 = self.clock
        self.clock += 1.0
        return CallResult(call.call_id, text, ids, submitted, t0, t0, self.clock, 0)


def run_echo(proc: QueryProcessor, tokenizer: Tokenizer, max_steps: int = 10_000_000
             ) -> EchoEngine:
    """Drive `proc` to completion on one echo engine (all workers share its queue)."""
    engine = EchoEngine(tokenizer)
    for prefixes in proc.prewarm_prompts().values():
        for p in prefixes:
            engine.prewarm(p)
    for call in proc.start():
        engine.submit(call)
    steps = 0
    while engine.queue:
        for call in proc.on_finished(engine.step()):
            engine.submit(call)
        steps += 1
        if steps > max_steps:
            raise RuntimeError("echo run did not finish")
    if not proc.done:
        raise RuntimeError(f"echo engine drained but the processor is not done: {proc.stuck()}")
    return engine


class EchoSession:
    """The null backend as a `helium_lab.backend.Session`: one echo engine per run, one
    time unit per call, no cache (to check plans and outputs without a timing model)."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self._tok = tokenizer

    @property
    def tokenizer(self) -> Tokenizer:
        return self._tok

    def run(self, proc: QueryProcessor, *, progress: bool = False) -> BackendResult:
        engine = run_echo(proc, self._tok)
        return BackendResult(tuple(proc.records), {}, {0: engine.stats()}, 0.0, 0.0,
                             engine.clock)

    def close(self) -> None:
        pass
