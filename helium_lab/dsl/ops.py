"""Operator records of the lazy workflow DSL (PAPER.md §2.1, Table 6).

Ops are immutable records. An op refers to its inputs by id; ids are unique within the
workflow that made the op (no process-wide counters). The optimizer rewrites graphs by
building new records with `dataclasses.replace`, never by mutating one.
"""

from __future__ import annotations

import hashlib
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from helium_lab.errors import GraphError

CHAT_ROLES = ("system", "user", "assistant", "tool")  # what a chat template renders


class OpKind(StrEnum):
    INPUT = "input"
    DATA = "data"
    FORMAT = "format"
    LAMBDA = "lambda"
    LLM = "llm"
    OUTPUT = "output"
    CACHE_FETCH = "cache_fetch"


@dataclass(frozen=True)
class SamplingParams:
    """Generation settings of an LLM op. Greedy (temperature 0) makes an op deterministic."""

    temperature: float = 0.0
    max_tokens: int = 512
    top_p: float = 1.0
    seed: int | None = None

    def __post_init__(self) -> None:
        """Refuse what vLLM's SamplingParams would refuse, at build time rather than on a
        real engine: temperature >= 0, max_tokens >= 1, top_p in (0, 1], seed an integer."""
        def number(v: object) -> bool:
            return isinstance(v, (int, float)) and not isinstance(v, bool)

        if not number(self.temperature) or self.temperature < 0:
            raise GraphError(f"sampling temperature must be >= 0, got {self.temperature!r}")
        if (not isinstance(self.max_tokens, int) or isinstance(self.max_tokens, bool)
                or self.max_tokens < 1):
            raise GraphError(f"sampling max_tokens must be an integer >= 1, got "
                             f"{self.max_tokens!r}")
        if not number(self.top_p) or not 0 < self.top_p <= 1:
            raise GraphError(f"sampling top_p must be in (0, 1], got {self.top_p!r}")
        if self.seed is not None and (not isinstance(self.seed, int)
                                      or isinstance(self.seed, bool)):
            raise GraphError(f"sampling seed must be an integer or None, got {self.seed!r}")

    @property
    def deterministic(self) -> bool:
        return self.temperature == 0.0


@dataclass(frozen=True)
class OutputProfile:
    """Offline profile of an LLM op's output length, in tokens.

    `length_for(key)` picks a length in [lo, hi] from a stable hash of `key` (the rendered
    prompt), so identical calls always produce outputs of identical length.
    """

    mean: float
    lo: int | None = None
    hi: int | None = None

    def bounds(self) -> tuple[int, int]:
        m = max(1, round(self.mean))
        lo = self.lo if self.lo is not None else max(1, round(0.75 * m))
        hi = self.hi if self.hi is not None else max(lo, round(1.25 * m))
        return lo, max(lo, hi)

    def length_for(self, key: bytes, cap: int) -> int:
        lo, hi = self.bounds()
        h = int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little")
        return max(1, min(cap, lo + h % (hi - lo + 1)))


@dataclass(frozen=True)
class Msg:
    """One chat message: a role and content parts (static text, or the id of an op whose
    text output is spliced in)."""

    role: str
    parts: tuple[str | Ref, ...]


@dataclass(frozen=True)
class Ref:
    """A reference to another op's output inside a message or template."""

    op: str


@dataclass(frozen=True)
class Op:
    """Base record: an id, and the ids of the ops it reads."""

    id: str
    owner: object = field(compare=False, repr=False)

    kind: OpKind = field(init=False, default=OpKind.INPUT)

    def inputs(self) -> tuple[str, ...]:
        """Ids of the ops this op reads, each once, in order of first use (memoized)."""
        cached: tuple[str, ...] | None = self.__dict__.get("_inputs")
        if cached is None:
            cached = self._inputs()
            object.__setattr__(self, "_inputs", cached)
        return cached

    def _inputs(self) -> tuple[str, ...]:
        return ()

    def params(self) -> tuple[object, ...]:
        """The op's parameters other than its inputs: part of its structural signature."""
        return ()


@dataclass(frozen=True)
class InputOp(Op):
    """Placeholder for per-query data bound by name at compile time."""

    name: str = ""
    kind: OpKind = field(init=False, default=OpKind.INPUT)

    def params(self) -> tuple[object, ...]:
        return (self.name,)


@dataclass(frozen=True)
class DataOp(Op):
    """Static batch data: one value for every query, or one per query."""

    values: str | tuple[str, ...] = ""
    kind: OpKind = field(init=False, default=OpKind.DATA)

    def params(self) -> tuple[object, ...]:
        return (self.values,)

    def value(self, query: int) -> str:
        return self.values if isinstance(self.values, str) else self.values[query]


@dataclass(frozen=True)
class FormatOp(Op):
    """`str.format`-style templating over named arguments (op refs or constants)."""

    template: str = ""
    args: tuple[tuple[str, str | Ref], ...] = ()
    kind: OpKind = field(init=False, default=OpKind.FORMAT)

    def fields(self) -> tuple[str, ...]:
        return tuple(f for _, f, _, _ in string.Formatter().parse(self.template) if f)

    def used_args(self) -> tuple[tuple[str, str | Ref], ...]:
        used = set(self.fields())
        return tuple((k, v) for k, v in self.args if k in used)

    def _inputs(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(v.op for _, v in self.args if isinstance(v, Ref)))

    def params(self) -> tuple[object, ...]:
        return (self.template, self.args)

    def pieces(self) -> list[str | Ref]:
        """The template as literal text interleaved with argument values/refs."""
        args = dict(self.args)
        out: list[str | Ref] = []
        for literal, fname, spec, conv in string.Formatter().parse(self.template):
            if literal:
                out.append(literal)
            if fname is None:
                continue
            if spec or conv:
                raise ValueError(f"format op {self.id!r}: field {{{fname}}} uses a spec/conversion")
            out.append(args[fname])
        return out


@dataclass(frozen=True)
class LambdaOp(Op):
    """An arbitrary Python function of its inputs' text (e.g. parsing an LLM answer)."""

    fn: Callable[..., str] = field(default=str, compare=False)
    args: tuple[str, ...] = ()
    fn_name: str = ""
    deterministic: bool = True
    cacheable: bool = False
    est_tokens: int = 32
    kind: OpKind = field(init=False, default=OpKind.LAMBDA)

    def _inputs(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.args))  # each input once, even if read twice

    def params(self) -> tuple[object, ...]:
        return (self.fn_name, self.deterministic)


@dataclass(frozen=True)
class LLMOp(Op):
    """An LLM call per query over role-tagged chat messages.

    `agent` names the agent (a role with its own conversation) that makes the call; several
    ops may belong to one agent (a debater's rounds). Dispatch disciplines that serve calls
    per agent (AgentScope's agent servers) read it; it is not part of the op's identity, so
    identical calls of different agents still merge under CSE."""

    messages: tuple[Msg, ...] = ()
    sampling: SamplingParams = SamplingParams()
    profile: OutputProfile = OutputProfile(mean=256)
    name: str = ""
    cacheable: bool = True
    agent: str = ""
    kind: OpKind = field(init=False, default=OpKind.LLM)

    def _inputs(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for m in self.messages:
            for p in m.parts:
                if isinstance(p, Ref):
                    seen[p.op] = None
        return tuple(seen)

    def params(self) -> tuple[object, ...]:
        return (self.messages, self.sampling)


@dataclass(frozen=True)
class OutputOp(Op):
    """Materializes an op's value as a named final output of the workflow."""

    name: str = ""
    source: str = ""
    kind: OpKind = field(init=False, default=OpKind.OUTPUT)

    def _inputs(self) -> tuple[str, ...]:
        return (self.source,)

    def params(self) -> tuple[object, ...]:
        return (self.name,)


@dataclass(frozen=True)
class CacheFetchOp(Op):
    """Inserted by the optimizer: the replaced op's result for each query, from the prompt
    cache (PAPER.md §2.2 pass 3)."""

    replaces: str = ""
    values: tuple[str, ...] = ()
    kind: OpKind = field(init=False, default=OpKind.CACHE_FETCH)
