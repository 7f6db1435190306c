"""Soft schedules: what a scheduling policy hands to the query processor.

Per worker, a list of *inner sequences* (stages) of LLM op ids. Within a stage calls go
query by query (reusing each query's prefix); stages go one after another (reusing the
static prefix an operator group shares). The processor follows this order best-effort:
among calls whose inputs are ready it submits the lowest `rank` first.

    worker 0: [[op1 op2] [op4] [op5] [op3] [op6]]
    rank(op2, q) = (stage 0, query position of q, position 1 in the stage)

`dispatch` names how strictly, a rule of `helium_lab.scheduling.dispatch`: "best_effort"
(any ready call, by rank), "strict" (calls in exact rank order, head-of-line blocking),
"random" (a seeded random order, LangGraph's ready-dispatch), "lspf" (longest shared prefix
first, decided against the engine's cache).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

Dispatch = Literal["best_effort", "strict", "random", "lspf"]


@dataclass(frozen=True)
class Partition:
    """Op copies per worker: an op in `op_worker` runs whole on that worker; every other op
    follows the query split `query_worker` (one copy per worker over its slice)."""

    num_workers: int
    query_worker: tuple[int, ...]
    op_worker: dict[str, int] = field(default_factory=dict)
    _counts: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        counts = Counter(self.query_worker)
        object.__setattr__(self, "_counts", tuple(counts[w] for w in range(self.num_workers)))

    def worker_of(self, op: str, query: int) -> int:
        w = self.op_worker.get(op)
        return self.query_worker[query] if w is None else w

    def workers_of(self, op: str) -> list[int]:
        w = self.op_worker.get(op)
        if w is not None:
            return [w]
        return [x for x, n in enumerate(self._counts) if n]

    def calls_on(self, op: str, worker: int) -> int:
        w = self.op_worker.get(op)
        if w is not None:
            return len(self.query_worker) if w == worker else 0
        return self._counts[worker]

    @staticmethod
    def even(num_workers: int, batch: int) -> Partition:
        """Contiguous equal slices (the reference code's static split)."""
        return Partition(num_workers, tuple(q * num_workers // batch for q in range(batch)))


@dataclass(frozen=True)
class Schedule:
    """A policy's output: the partition, per-worker stages, and the dispatch discipline."""

    policy: str
    partition: Partition
    stages: tuple[tuple[tuple[str, ...], ...], ...]
    dispatch: Dispatch = "best_effort"
    seed: int = 0
    stats: dict[str, float] = field(default_factory=dict, compare=False)
    call_order: dict[tuple[str, int], int] | None = None  # explicit per-call ranks, if refined

    def __post_init__(self) -> None:
        index: dict[tuple[int, str], tuple[int, int]] = {}
        for w, stages in enumerate(self.stages):
            for s, stage in enumerate(stages):
                for i, op in enumerate(stage):
                    index[(w, op)] = (s, i)
        object.__setattr__(self, "_index", index)

    @property
    def num_workers(self) -> int:
        return self.partition.num_workers

    def rank(self, op: str, query: int) -> tuple[int, int, int]:
        """Position of call (op, query) in its worker's order (smaller is earlier)."""
        if self.call_order is not None:
            return (self.call_order[(op, query)], 0, 0)
        w = self.partition.worker_of(op, query)
        s, i = self._index[(w, op)]  # type: ignore[attr-defined]
        return (s, query, i)

    def describe(self) -> str:
        lines = [f"schedule ({self.policy}, {self.dispatch}):"]
        for w, stages in enumerate(self.stages):
            body = " ".join("[" + " ".join(st) + "]" for st in stages)
            lines.append(f"  worker {w}: [{body}]")
        if self.call_order is not None:
            calls = sorted(self.call_order, key=self.call_order.__getitem__)
            lines.append("  refined call order: " + " ".join(f"{o}@{q}" for o, q in calls))
        return "\n".join(lines)
