"""The optimized logical plan: what runs, what is fetched, what to pre-warm.

No worker binding or timeline lives here (that is the scheduler's output).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from helium_lab.dsl.graph import BoundGraph, Graph
from helium_lab.dsl.ops import CacheFetchOp, LLMOp


@dataclass
class Plan:
    """`bound` is the optimized graph bound to the batch.

    `fetched[op][query]` holds per-query prompt-cache hits of ops that still run for other
    queries; `aliases` maps each op CSE removed to the op that computes it; `static_prefixes`
    maps LLM op ids to their leading static text when it is long enough to pre-warm.
    """

    bound: BoundGraph
    original: Graph
    fetched: dict[str, dict[int, str]] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)
    pruned: list[str] = field(default_factory=list)
    static_prefixes: dict[str, str] = field(default_factory=dict)
    stats: dict[str, float] = field(default_factory=dict)

    @property
    def graph(self) -> Graph:
        return self.bound.graph

    @property
    def size(self) -> int:
        return self.bound.size

    @property
    def llm_ops(self) -> list[LLMOp]:
        return self.graph.llm_ops

    def num_calls(self) -> int:
        """LLM calls the plan will issue (per-query cache hits excluded)."""
        return sum(self.size - len(self.fetched.get(op.id, ())) for op in self.llm_ops)

    def describe(self) -> str:
        """The optimized plan, with what each pass did."""
        g = self.graph
        fetch = [oid for oid, op in g.ops.items() if isinstance(op, CacheFetchOp)]
        lines = [
            f"optimized plan for {g.name!r}: batch {self.size}, {len(g.ops)} ops "
            f"({len(self.original.ops)} before), {len(self.llm_ops)} LLM ops, "
            f"{self.num_calls()} LLM calls",
            f"  pruned: {self.pruned or '-'}",
            f"  merged by CSE: {self.aliases or '-'}",
            f"  cache-fetched ops: {fetch or '-'}; partial hits: "
            f"{ {k: len(v) for k, v in self.fetched.items()} or '-'}",
            f"  static prefixes to pre-warm: {sorted(self.static_prefixes) or '-'}",
        ]
        return "\n".join(lines) + "\n" + g.describe()
