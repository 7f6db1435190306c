"""The lazy builder: each method records an op and returns a handle; nothing runs.

    wf = Workflow("reflect")
    q = wf.input("q")
    a = wf.llm([Msg("user", (q,))], name="expert")
    r = wf.llm([Msg("user", (wf.fmt("Revise {a} for {q}", a=a, q=q),))], name="revise")
    wf.output("answer", r)
    graph = wf.build()                       # or Graph.build([...terminals...])
    bound = graph.compile(q=["How many inches is 1 meter?"])
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

from helium_lab.dsl.ops import (
    CHAT_ROLES,
    DataOp,
    FormatOp,
    InputOp,
    LambdaOp,
    LLMOp,
    Msg,
    Op,
    OutputOp,
    OutputProfile,
    Ref,
    SamplingParams,
)
from helium_lab.errors import GraphError

if TYPE_CHECKING:  # graph.py imports this module's ops
    from helium_lab.dsl.graph import Graph

Part = str | Op


class Workflow:
    """Records ops; ids are `<kind><n>` (or the op's given name) unique in this workflow."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.ops: dict[str, Op] = {}
        self._count = 0

    # -- ids and ownership -------------------------------------------------------------
    def _new_id(self, prefix: str, name: str | None) -> str:
        if name:
            if name in self.ops:
                raise GraphError(f"workflow {self.name!r}: duplicate op name {name!r}")
            return name
        while True:
            self._count += 1
            cand = f"{prefix}{self._count}"
            if cand not in self.ops:
                return cand

    def _own(self, op: Op, where: str) -> str:
        if not isinstance(op, Op):
            raise GraphError(f"workflow {self.name!r}: {where} got {type(op).__name__}, not an op")
        if op.owner is not self:
            raise GraphError(
                f"workflow {self.name!r}: {where} uses op {op.id!r} from another workflow")
        return op.id

    def _add(self, op: Op) -> Op:
        self.ops[op.id] = op
        return op

    def _part(self, p: Part, where: str) -> str | Ref:
        return p if isinstance(p, str) else Ref(self._own(p, where))

    # -- op constructors ---------------------------------------------------------------
    def input(self, name: str) -> InputOp:
        """A named per-query input, bound at `compile`."""
        op = InputOp(id=self._new_id("input:", name and f"input:{name}"), owner=self, name=name)
        return self._add(op)  # type: ignore[return-value]

    def data(self, values: str | Sequence[str], name: str | None = None) -> DataOp:
        """Static data: a constant, or one value per query of the batch."""
        vals: str | tuple[str, ...] = values if isinstance(values, str) else tuple(values)
        return self._add(DataOp(id=self._new_id("data", name), owner=self, values=vals))  # type: ignore[return-value]

    def fmt(self, template: str, name: str | None = None, **args: Part) -> FormatOp:
        """`str.format` templating; `args` are ops or constant strings."""
        oid = self._new_id("fmt", name)
        items = tuple((k, self._part(v, f"fmt {oid!r} arg {k!r}")) for k, v in args.items())
        op = FormatOp(id=oid, owner=self, template=template, args=items)
        try:
            template_fields = op.fields()
        except ValueError as e:  # str.format's parser: "expected '}' before end of string"
            raise GraphError(f"format op {oid!r}: bad template {template!r}: {e}") from None
        missing = [f for f in template_fields if f not in args]
        if missing:
            raise GraphError(f"format op {oid!r}: template field(s) {missing} have no argument")
        return self._add(op)  # type: ignore[return-value]

    def lam(self, fn: Callable[..., str], *args: Op, name: str | None = None,
            deterministic: bool = True, cacheable: bool = False, est_tokens: int = 32) -> LambdaOp:
        """A Python function of its inputs' text. Only deterministic lambdas may be cached."""
        oid = self._new_id("lambda", name)
        if cacheable and not deterministic:
            raise GraphError(f"lambda op {oid!r} is marked cacheable but not deterministic")
        ids = tuple(self._own(a, f"lambda {oid!r}") for a in args)
        op = LambdaOp(id=oid, owner=self, fn=fn, args=ids,
                      fn_name=getattr(fn, "__qualname__", "fn"), deterministic=deterministic,
                      cacheable=cacheable, est_tokens=est_tokens)
        return self._add(op)  # type: ignore[return-value]

    def llm(self, messages: Iterable[Msg | tuple[str, Part | Sequence[Part]]], *,
            name: str | None = None, sampling: SamplingParams | None = None,
            profile: OutputProfile | None = None, cacheable: bool | None = None,
            agent: str | None = None) -> LLMOp:
        """An LLM op over chat messages; a message's content is text, an op, or a list of both.
        `agent` (default: the op's name) is the agent that makes the call."""
        oid = self._new_id("llm", name)
        msgs = tuple(self.msg(m, oid) for m in messages)
        if not msgs:
            raise GraphError(f"llm op {oid!r} has no messages (a chat request needs one)")
        for m in msgs:
            if m.role not in CHAT_ROLES:
                raise GraphError(f"llm op {oid!r}: unknown message role {m.role!r}; a chat "
                                 f"template knows {list(CHAT_ROLES)}")
        sp = sampling or SamplingParams()
        if cacheable is None:
            cacheable = sp.deterministic
        if cacheable and not sp.deterministic:
            raise GraphError(
                f"llm op {oid!r} is marked cacheable but samples at temperature {sp.temperature}")
        op = LLMOp(id=oid, owner=self, messages=msgs, sampling=sp,
                   profile=profile or OutputProfile(mean=min(256, sp.max_tokens)),
                   name=name or oid, cacheable=cacheable, agent=agent or name or oid)
        return self._add(op)  # type: ignore[return-value]

    def msg(self, m: Msg | tuple[str, Part | Sequence[Part]], where: str = "msg") -> Msg:
        if isinstance(m, Msg):
            for p in m.parts:
                if isinstance(p, Ref) and p.op not in self.ops:
                    raise GraphError(f"{where}: message refers to unknown op {p.op!r}")
            return m
        role, content = m
        parts = [content] if isinstance(content, (str, Op)) else list(content)
        return Msg(role, tuple(self._part(p, f"llm {where!r} {role} message") for p in parts))

    def output(self, name: str, source: Op) -> OutputOp:
        """Marks `source`'s value as the final output `name` of each query."""
        src = self._own(source, f"output {name!r}")
        oid = self._new_id("output:", f"output:{name}")
        op = OutputOp(id=oid, owner=self, name=name, source=src)
        return self._add(op)  # type: ignore[return-value]

    def build(self, terminals: Sequence[Op] | None = None) -> Graph:
        """The graph reachable backwards from `terminals` (default: every op recorded)."""
        from helium_lab.dsl.graph import Graph

        if terminals is None:
            return Graph(self.name, dict(self.ops))
        for t in terminals:
            self._own(t, "build")
        return Graph.build(terminals)


def history(llm: LLMOp) -> list[Msg]:
    """The messages of `llm` followed by its answer: the conversation so far, to extend."""
    return [*llm.messages, Msg("assistant", (Ref(llm.id),))]
