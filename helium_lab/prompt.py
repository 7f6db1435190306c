"""Prompt structure: an LLM op's messages flattened into static text and placeholders.

Chat rendering follows a ChatML-like template:

    <|im_start|>system\n ...content... <|im_end|>\n <|im_start|>user\n ... <|im_start|>assistant\n

`segments(graph, op)` expands Format ops (and constant Data ops) inline, so what remains
between static runs are placeholders (`Slot`) for per-query inputs and upstream results.
That is GetPrefixTemplate of Alg. 2, and also how calls are rendered: each piece is
tokenized on its own and the ids concatenated, so equal pieces always give equal tokens.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from helium_lab.dsl.graph import Graph
from helium_lab.dsl.ops import DataOp, FormatOp, LLMOp, Msg, Ref

ROLE_OPEN = "<|im_start|>{role}\n"
ROLE_CLOSE = "<|im_end|>\n"
GENERATION_PROMPT = "<|im_start|>assistant\n"


@dataclass(frozen=True)
class Static:
    """Literal prompt text, identical for every query."""

    text: str


@dataclass(frozen=True)
class Slot:
    """A placeholder filled by op `op`'s value (a per-query input or an upstream result)."""

    op: str


Segment = Static | Slot


def segments(graph: Graph, op: LLMOp) -> tuple[Segment, ...]:
    """The op's prompt as maximal static runs and slots, in order (memoized per graph)."""
    memo = graph.memo.setdefault("segments", {})
    got = memo.get(op.id)
    if got is None:
        got = memo[op.id] = _segments(graph, op)
    return got  # type: ignore[return-value]


def _segments(graph: Graph, op: LLMOp) -> tuple[Segment, ...]:
    out: list[Segment] = []

    def static(text: str) -> None:
        if not text:
            return
        if out and isinstance(out[-1], Static):
            out[-1] = Static(out[-1].text + text)
        else:
            out.append(Static(text))

    def part(p: str | Ref) -> None:
        if isinstance(p, str):
            static(p)
            return
        src = graph.ops[p.op]
        if isinstance(src, FormatOp):
            for piece in src.pieces():
                part(piece)
        elif isinstance(src, DataOp) and isinstance(src.values, str):
            static(src.values)
        else:
            out.append(Slot(p.op))

    for m in op.messages:
        message(m, static, part)
    static(GENERATION_PROMPT)
    return tuple(out)


def message(m: Msg, static: Callable[[str], None], part: Callable[[str | Ref], None]) -> None:
    static(ROLE_OPEN.format(role=m.role))
    for p in m.parts:
        part(p)
    static(ROLE_CLOSE)


def render(segs: tuple[Segment, ...], value: Callable[[str], str]) -> list[str]:
    """The prompt's text pieces for one query; `value(op_id)` resolves a slot."""
    return [s.text if isinstance(s, Static) else value(s.op) for s in segs]


def leading_static(segs: tuple[Segment, ...]) -> str:
    """The static text before the first placeholder: the proactive-KV candidate."""
    return segs[0].text if segs and isinstance(segs[0], Static) else ""
