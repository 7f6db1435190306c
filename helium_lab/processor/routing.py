"""Routing strategies for systems whose calls are not placed by the schedule.

Each picks a worker for a call at submit time from the processor's view of the workers.
"""

from __future__ import annotations

from collections.abc import Sequence

from helium_lab.processor.calls import LLMCall


class Router:
    def pick(self, call: LLMCall, inflight: Sequence[int], static_key: int) -> int:
        raise NotImplementedError


class LeastLoaded(Router):
    """Queue-length balancer: the worker with the fewest outstanding calls."""

    def pick(self, call: LLMCall, inflight: Sequence[int], static_key: int) -> int:
        return min(range(len(inflight)), key=lambda w: (inflight[w], w))


class RoundRobin(Router):
    def __init__(self) -> None:
        self.next = 0

    def pick(self, call: LLMCall, inflight: Sequence[int], static_key: int) -> int:
        w = self.next % len(inflight)
        self.next += 1
        return w


class PrefixAffinity(Router):
    """Parrot-style: calls sharing a static prefix stick to the worker that first served
    it (the least loaded at that moment). Good reuse, and the load imbalance the paper
    reports."""

    def __init__(self) -> None:
        self.home: dict[int, int] = {}

    def pick(self, call: LLMCall, inflight: Sequence[int], static_key: int) -> int:
        w = self.home.get(static_key)
        if w is None:
            w = self.home[static_key] = LeastLoaded().pick(call, inflight, static_key)
        return w


def make_router(name: str) -> Router | None:
    """None for "schedule" (the partition decides)."""
    return {"schedule": None, "least_loaded": LeastLoaded(), "round_robin": RoundRobin(),
            "prefix_affinity": PrefixAffinity()}[name]
