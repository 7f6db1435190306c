"""`max_output_tokens`: a deterministic cap on every call's output length.

CPU tests and validation runs cannot afford the workloads' 300-500-token answers (and
their downstream prompts outgrow a tiny model's context). `CappedProcessor` wraps a
`QueryProcessor` and rewrites each call it emits to `output_tokens = min(n, cap)`, before
any backend sees it. The cap depends only on the call, so a capped workload is still one
fixed workload: every system gets the same calls (outputs stay identical across systems),
and the simulator and the real engines see the same lengths when both run the wrapped
processor. Records report the generated (capped) lengths. Every backend honours it: the
real one inside its session (`runtime.open_session(max_output_tokens=...)`), the simulator
and the echo backend through `experiments.workflow_run`.
"""

from __future__ import annotations

from dataclasses import replace

from helium_lab.backend import Processor
from helium_lab.errors import ConfigError
from helium_lab.processor.calls import LLMCall
from helium_lab.processor.proxy import ProcessorProxy


class CappedProcessor(ProcessorProxy):
    """A processor proxy whose calls generate at most `cap` tokens (`cap` >= 1)."""

    def __init__(self, proc: Processor, cap: int) -> None:
        if isinstance(cap, bool) or not isinstance(cap, int) or cap < 1:
            raise ConfigError(f"max_output_tokens must be an integer >= 1, got {cap!r}")
        super().__init__(proc)
        self.cap = cap

    def emitted(self, calls: list[LLMCall]) -> list[LLMCall]:
        return [c if c.output_tokens <= self.cap else replace(c, output_tokens=self.cap)
                for c in calls]


def capped(proc: Processor, cap: int | None) -> Processor:
    """`proc` itself without a cap, else wrapped in a `CappedProcessor`."""
    return proc if cap is None else CappedProcessor(proc, cap)
