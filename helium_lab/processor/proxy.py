"""A stand-in for a `QueryProcessor` that backends drive exactly like the real one.

Subclasses rewrite the calls the processor emits (`emitted`) or observe the results it is
given (`finished`); everything else (records, outputs, ...) is the wrapped processor's.
"""

from __future__ import annotations

from helium_lab.backend import Processor
from helium_lab.processor.calls import CallResult, LLMCall


class ProcessorProxy:
    """A `helium_lab.backend.Processor` forwarding to `inner` (itself one)."""

    def __init__(self, inner: Processor) -> None:
        self.inner = inner

    def emitted(self, calls: list[LLMCall]) -> list[LLMCall]:
        """Hook: the calls `inner` emitted, as the backend will see them."""
        return calls

    def finished(self, result: CallResult) -> None:
        """Hook: a result, before `inner` sees it."""

    def start(self) -> list[LLMCall]:
        return self.emitted(self.inner.start())

    def on_finished(self, result: CallResult) -> list[LLMCall]:
        self.finished(result)
        return self.emitted(self.inner.on_finished(result))

    @property
    def done(self) -> bool:
        return bool(self.inner.done)

    def prewarm_prompts(self) -> dict[int, list[tuple[int, ...]]]:
        return self.inner.prewarm_prompts()

    def step_graph_updates(self) -> list[dict[str, int]]:
        return self.inner.step_graph_updates()
