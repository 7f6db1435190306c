"""Workflow graphs: a validated DAG of op records, and its binding to a query batch."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

from helium_lab.dsl.ops import InputOp, LLMOp, Op, OpKind, OutputOp
from helium_lab.errors import BindingError, GraphError


class Graph:
    """An immutable DAG of ops keyed by id. Construction checks references and acyclicity."""

    def __init__(self, name: str, ops: Mapping[str, Op]) -> None:
        self.name = name
        self.ops: dict[str, Op] = dict(ops)
        self.memo: dict[str, dict[str, object]] = {}  # derived per-op data; the graph is immutable
        for op in self.ops.values():
            for dep in op.inputs():
                if dep not in self.ops:
                    raise GraphError(
                        f"graph {name!r}: op {op.id!r} reads {dep!r}, not in the graph")
        self.order: tuple[str, ...] = self._topological_order()

    @staticmethod
    def build(terminals: Sequence[Op], name: str | None = None) -> Graph:
        """Materialize the graph by a backward traversal from `terminals`."""
        if not terminals:
            raise GraphError("Graph.build needs at least one terminal op")
        owner = terminals[0].owner
        wf_ops: Mapping[str, Op] = getattr(owner, "ops", {})
        for t in terminals:
            if t.owner is not owner:
                raise GraphError(f"Graph.build: terminal {t.id!r} is from another workflow")
        seen: dict[str, Op] = {}
        stack = [t.id for t in terminals]
        while stack:
            oid = stack.pop()
            if oid in seen:
                continue
            op = wf_ops.get(oid) if wf_ops else None
            if op is None:
                op = next((t for t in terminals if t.id == oid), None)
            if op is None:
                raise GraphError(f"Graph.build: op {oid!r} is unknown to its workflow")
            seen[oid] = op
            stack.extend(op.inputs())
        return Graph(str(name or getattr(owner, "name", "workflow")), seen)

    # -- structure ---------------------------------------------------------------------
    def _topological_order(self) -> tuple[str, ...]:
        """Kahn's algorithm, ties broken by insertion order so the order is reproducible."""
        indeg = {oid: 0 for oid in self.ops}
        for op in self.ops.values():
            for _dep in set(op.inputs()):
                indeg[op.id] += 1
        users = self.users
        ready = [oid for oid in self.ops if indeg[oid] == 0]
        out: list[str] = []
        i = 0
        while i < len(ready):
            oid = ready[i]
            i += 1
            out.append(oid)
            for u in users[oid]:
                indeg[u] -= 1
                if indeg[u] == 0:
                    ready.append(u)
        if len(out) != len(self.ops):
            stuck = sorted(oid for oid, d in indeg.items() if d > 0)
            raise GraphError(f"graph {self.name!r} has a cycle through op(s) {stuck[:5]}")
        return tuple(out)

    @cached_property
    def users(self) -> dict[str, list[str]]:
        """op id -> ids of the ops that read it (each reader once, in insertion order)."""
        out: dict[str, list[str]] = {oid: [] for oid in self.ops}
        for op in self.ops.values():
            for dep in dict.fromkeys(op.inputs()):
                out[dep].append(op.id)
        return out

    def op(self, ref: Op | str) -> Op:
        """The op with this id; an op handle from another graph is an error."""
        oid = ref if isinstance(ref, str) else ref.id
        found = self.ops.get(oid)
        if found is None or (isinstance(ref, Op) and found.owner is not ref.owner):
            raise GraphError(f"op {oid!r} is not part of graph {self.name!r}")
        return found

    @property
    def llm_ops(self) -> list[LLMOp]:
        return [op for oid in self.order if isinstance(op := self.ops[oid], LLMOp)]

    @property
    def outputs(self) -> list[OutputOp]:
        return [op for oid in self.order if isinstance(op := self.ops[oid], OutputOp)]

    @property
    def inputs(self) -> list[InputOp]:
        return [op for oid in self.order if isinstance(op := self.ops[oid], InputOp)]

    def replace(self, ops: Mapping[str, Op]) -> Graph:
        return Graph(self.name, ops)

    def compile(self, **bindings: Sequence[str]) -> BoundGraph:
        """Bind every input by name to a batch (one value per query). Runs nothing."""
        return BoundGraph.bind(self, bindings)

    def describe(self) -> str:
        """A readable listing of the DAG, one op per line in topological order."""
        lines = [f"graph {self.name!r}: {len(self.ops)} ops, {len(self.llm_ops)} LLM ops"]
        for oid in self.order:
            op = self.ops[oid]
            deps = ", ".join(op.inputs())
            lines.append(f"  {oid:<28} {op.kind.value:<11} <- {deps}" if deps
                         else f"  {oid:<28} {op.kind.value}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"Graph({self.name!r}, ops={len(self.ops)})"


@dataclass(frozen=True)
class BoundGraph:
    """A graph with its inputs bound to a batch of `size` queries."""

    graph: Graph
    batch: Mapping[str, tuple[str, ...]]
    size: int
    meta: Mapping[str, object] = field(default_factory=dict)

    @staticmethod
    def bind(graph: Graph, bindings: Mapping[str, Sequence[str]]) -> BoundGraph:
        names = {op.name: op for op in graph.inputs}
        missing = sorted(set(names) - set(bindings))
        extra = sorted(set(bindings) - set(names))
        if missing:
            raise BindingError(f"graph {graph.name!r}: no binding for input(s) {missing}")
        if extra:
            raise BindingError(f"graph {graph.name!r}: binding(s) {extra} match no input "
                               f"(inputs are {sorted(names)})")
        batch: dict[str, tuple[str, ...]] = {}
        for k, v in bindings.items():
            if isinstance(v, str):
                raise BindingError(f"input {k!r}: bind a list of values (one per query), not a str")
            vals = tuple(v)
            if not all(isinstance(x, str) for x in vals):
                raise BindingError(f"input {k!r}: every value must be a str")
            batch[k] = vals
        sizes = {k: len(v) for k, v in batch.items()}
        if len(set(sizes.values())) > 1:
            raise BindingError(f"graph {graph.name!r}: batch lists differ in length: {sizes}")
        size = next(iter(sizes.values()), 1)
        if size == 0:
            raise BindingError(f"graph {graph.name!r}: empty batch")
        for op in graph.ops.values():
            if op.kind is OpKind.DATA and not isinstance(op.values, str):  # type: ignore[attr-defined]
                n = len(op.values)  # type: ignore[attr-defined]
                if n != size:
                    raise BindingError(f"data op {op.id!r} has {n} values for a batch of {size}")
        return BoundGraph(graph, batch, size)

    def input_value(self, op: InputOp, query: int) -> str:
        return self.batch[op.name][query]
