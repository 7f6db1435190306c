"""Alg. 2: TRTs built from an optimized plan, at operator level and at call level.

GetPrefixTemplate is `helium_lab.prompt.segments`: static text becomes token atoms and
every other source (a per-query input, an upstream result) a placeholder. The operator-level
tree has one leaf per (LLM op, worker copy); the call-level tree one leaf per (op, query),
where values known before execution (inputs, data, cache hits) are spelled out as tokens
and only upstream LLM results remain placeholders, keyed by (op, query) so that calls
reading the same upstream answer share it.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from statistics import fmean

from helium_lab.dsl.graph import Graph
from helium_lab.dsl.ops import CacheFetchOp, DataOp, InputOp, LambdaOp, LLMOp, Op
from helium_lab.op_value import op_value
from helium_lab.plan import Plan
from helium_lab.prompt import Slot, segments
from helium_lab.tokenizer import Tokenizer, token_count
from helium_lab.trt.tree import TemplatedRadixTree

SAMPLE = 16


def llm_dependencies(graph: Graph) -> dict[str, tuple[str, ...]]:
    """For each LLM op, the LLM ops it reads directly or through non-LLM ops (E')."""
    reach: dict[str, tuple[str, ...]] = {}
    for oid in graph.order:
        op = graph.ops[oid]
        found: dict[str, None] = {}
        for d in op.inputs():
            if isinstance(graph.ops[d], LLMOp):
                found[d] = None
            else:
                found.update(dict.fromkeys(reach[d]))
        reach[oid] = tuple(found)
    return {op.id: reach[op.id] for op in graph.llm_ops}


class SlotLengths:
    """Estimated token length of each op's value, for placeholders (per-op averages)."""

    def __init__(self, plan: Plan, count: Callable[[str], int]) -> None:
        self.plan, self.count = plan, count
        self._cache: dict[str, float] = {}

    def __call__(self, oid: str) -> float:
        got = self._cache.get(oid)
        if got is None:
            got = self._cache[oid] = self._estimate(self.plan.graph.ops[oid])
        return got

    def _mean(self, values: Sequence[str]) -> float:
        """Mean token count over at most SAMPLE evenly spaced values (a per-op average
        needs no more, and planning time must not grow with the batch)."""
        step = max(1, len(values) // SAMPLE)
        return fmean(self.count(v) for v in values[::step][:SAMPLE])

    def _estimate(self, op: Op) -> float:
        bound = self.plan.bound
        if isinstance(op, LLMOp):
            return float(min(op.profile.mean, op.sampling.max_tokens))
        if isinstance(op, InputOp):
            return self._mean(bound.batch[op.name])
        if isinstance(op, DataOp):
            return self._mean([op.values] if isinstance(op.values, str) else op.values)
        if isinstance(op, CacheFetchOp):
            return self._mean(op.values)
        if isinstance(op, LambdaOp):
            return float(op.est_tokens)
        return float(sum(self(d) for d in op.inputs()) or 1.0)


def operator_trt(plan: Plan, tokenizer: Tokenizer, workers_of: Mapping[str, Iterable[int]],
                 lengths: SlotLengths | None = None,
                 pinned: Mapping[str, int] | None = None) -> TemplatedRadixTree:
    """Alg. 2 over the plan's LLM ops; leaves are (op id, worker).

    Copies of two ops that both follow the query split depend only on each other's copy on
    the same worker (their queries are the same); otherwise on every copy of the input.
    With `pinned=None` every op is taken to follow the query split.
    """
    tree = TemplatedRadixTree()
    est = lengths or SlotLengths(plan, lambda s: token_count(tokenizer, s))
    graph = plan.graph
    deps = llm_dependencies(graph)
    for op in graph.llm_ops:
        atoms: list[int] = []
        for seg in segments(graph, op):
            if isinstance(seg, Slot):
                atoms.append(tree.slot(seg.op, est(seg.op)))
            else:
                atoms.extend(tokenizer.encode(seg.text))
        for w in workers_of[op.id]:
            dep_keys = [(d, v) for d in deps[op.id] for v in workers_of[d]
                        if v == w or pinned is None or d in pinned or op.id in pinned]
            tree.add((op.id, w), atoms, worker=w, deps=dep_keys)
    return tree


def call_trt(plan: Plan, tokenizer: Tokenizer, queries: Iterable[int] | None = None,
             lengths: SlotLengths | None = None) -> TemplatedRadixTree:
    """The call-level TRT (one worker): leaves are (op id, query) for every call to run."""
    tree = TemplatedRadixTree()
    est = lengths or SlotLengths(plan, lambda s: token_count(tokenizer, s))
    graph, bound = plan.graph, plan.bound
    deps = llm_dependencies(graph)
    for q in queries if queries is not None else range(plan.size):
        known: dict[str, str] = {}
        for oid in graph.order:
            op = graph.ops[oid]
            fetched = plan.fetched.get(oid, {}).get(q)
            if fetched is not None:
                known[oid] = fetched
            elif not isinstance(op, LLMOp) and all(d in known for d in op.inputs()) and not (
                    isinstance(op, LambdaOp) and not op.deterministic):
                known[oid] = op_value(op, q, bound, known.__getitem__)
        for op in graph.llm_ops:
            if op.id in known:
                continue
            atoms: list[int] = []
            for seg in segments(graph, op):
                if isinstance(seg, Slot):
                    if seg.op in known:
                        atoms.extend(tokenizer.encode(known[seg.op]))
                    else:
                        atoms.append(tree.slot((seg.op, q), est(seg.op)))
                else:
                    atoms.extend(tokenizer.encode(seg.text))
            dep_keys: list[Hashable] = [(d, q) for d in deps[op.id] if d not in known]
            tree.add((op.id, q), atoms, deps=dep_keys)
    return tree
