"""Common-subexpression elimination over the whole DAG (PAPER.md §2.2 pass 2).

Ops are visited in topological order and keyed by (kind, parameters, canonical ids of their
inputs). Because inputs are canonicalized first, merges cascade through any number of
levels. LLM ops merge whenever they are deterministic (greedy decoding): two greedy calls
on the same prompt return the same text, so running one of them preserves semantics.
Non-deterministic ops (sampled LLM calls, lambdas marked non-deterministic) keep their own
identity and are never merged. Output ops are never merged (each is a named result).

`merge_llm=False` merges only non-LLM ops: what the reference runtime's
`optimizer.py::_merge_nodes` does (it groups `FunctionalOp`s only), so identical LLM calls
all run there (pass name `cse_functional`; docs/systems.md, Helium).
"""

from __future__ import annotations

from helium_lab.dsl.graph import Graph
from helium_lab.dsl.ops import LambdaOp, LLMOp, Op, OutputOp
from helium_lab.optimizer.rewrite import remap


def _mergeable(op: Op, merge_llm: bool) -> bool:
    if isinstance(op, LLMOp):
        return merge_llm and op.sampling.deterministic
    if isinstance(op, LambdaOp):
        return op.deterministic
    return not isinstance(op, OutputOp)


def cse(graph: Graph, merge_llm: bool = True) -> tuple[Graph, dict[str, str]]:
    """The deduplicated graph, and a map from each removed op id to the id that replaced it."""
    canon: dict[tuple[object, ...], str] = {}
    alias: dict[str, str] = {}
    ops: dict[str, Op] = {}
    for oid in graph.order:
        op = remap(graph.ops[oid], alias)
        if _mergeable(op, merge_llm):
            key = (op.kind, type(op).__name__, op.params(), op.inputs(),
                   getattr(op, "fn", None))
            kept = canon.setdefault(key, oid)
            if kept != oid:
                alias[oid] = kept
                continue
        ops[oid] = op
    return graph.replace(ops), alias
