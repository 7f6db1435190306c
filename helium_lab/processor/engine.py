"""The engine contract each backend implements, one engine per worker (DESIGN.md seam).

Completions are delivered by the backend's driver (a SimPy process in `sim/`, an asyncio
task in `runtime/`), which hands each `CallResult` to `QueryProcessor.on_finished` and
submits whatever calls that returns.
"""

from __future__ import annotations

from typing import Protocol

from helium_lab.processor.calls import LLMCall


class Engine(Protocol):
    """One worker's LLM engine."""

    def submit(self, call: LLMCall) -> None:
        """Queue a call; its `CallResult` arrives later through the backend's driver."""

    def prewarm(self, prompt_ids: tuple[int, ...]) -> None:
        """Prefill `prompt_ids` into the prefix cache (proactive KV caching), no output."""

    def stats(self) -> dict[str, float]:
        """Counters: prefix-cache queries/hits, KV usage, batch sizes."""
        ...
