"""An in-memory engine and driver for tests: finishes calls in submission order.

Outputs come from `synthetic_output`, a deterministic function of the prompt, so any two
executions that render the same prompts produce the same final outputs; the logical clock
advances one unit per completion.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping

from helium_lab.backend import BackendResult, Processor, RunLedger
from helium_lab.errors import HeliumError
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

    def submit(self, call: LLMCall, submit_t: float | None = None) -> None:
        """Queue `call`; its submit time is the logical clock (`submit_t` is ignored: the
        echo engine has no transit)."""
        self.queue.append((call, self.clock))

    def prewarm(self, prompt_ids: tuple[int, ...]) -> None:
        self.prewarmed.append(prompt_ids)

    def update_step_graph(self, steps: Mapping[str, int]) -> None:
        """Ignored: the echo engine has no cache."""

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
    """The null backend, a `helium_lab.backend.Session`: one echo engine that all workers
    share, fresh per run, one time unit per call, no cache (to check plans and outputs
    without a timing model)."""

    def __init__(self, tokenizer: Tokenizer, num_workers: int = 1) -> None:
        self._tok = tokenizer
        self.num_workers = num_workers

    @property
    def tokenizer(self) -> Tokenizer:
        return self._tok

    def run(self, proc: Processor, *, progress: bool = False) -> BackendResult:
        engine = EchoEngine(self._tok)
        ledger = RunLedger(proc, [engine] * self.num_workers, HeliumError,
                           progress=progress, desc="echo")
        try:
            for w, prefixes in sorted(proc.prewarm_prompts().items()):
                for p in prefixes:
                    ledger.engine(w, "prewarm").prewarm(p)
            for eng, call in ledger.submitted(proc.start()):
                eng.submit(call)
            while engine.queue:
                result = engine.step()
                ledger.finished(result)
                for eng, call in ledger.submitted(proc.on_finished(result)):
                    eng.submit(call)
        finally:
            ledger.close()
        return ledger.result({}, begin_t=0.0, start_t=0.0)

    def close(self) -> None:
        pass
