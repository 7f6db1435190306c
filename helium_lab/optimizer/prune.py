"""Operator pruning (dead-op elimination, PAPER.md §2.2 pass 1).

An op survives only if some Output reads it along a path that is really rendered: a Format
argument its template never mentions is an unrendered branch, so the edge is dropped first
and whatever only it fed goes too.
"""

from __future__ import annotations

from dataclasses import replace

from helium_lab.dsl.graph import Graph
from helium_lab.dsl.ops import FormatOp, Op, OutputOp
from helium_lab.errors import GraphError


def prune(graph: Graph) -> tuple[Graph, list[str]]:
    """The graph restricted to ops that reach an Output; also the removed ids."""
    ops: dict[str, Op] = {}
    for oid, op in graph.ops.items():
        if isinstance(op, FormatOp) and len(op.used_args()) < len(op.args):
            op = replace(op, args=op.used_args())
        ops[oid] = op
    live: set[str] = set()
    stack = [op.id for op in ops.values() if isinstance(op, OutputOp)]
    if not stack:
        raise GraphError(f"graph {graph.name!r} has no output op: everything would be pruned")
    while stack:
        oid = stack.pop()
        if oid not in live:
            live.add(oid)
            stack.extend(ops[oid].inputs())
    removed = [oid for oid in graph.order if oid not in live]
    return graph.replace({oid: ops[oid] for oid in graph.order if oid in live}), removed
