"""Helpers to rewrite op records: remap the ids they read."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from helium_lab.dsl.ops import FormatOp, LambdaOp, LLMOp, Msg, Op, OutputOp, Ref


def remap(op: Op, mapping: Mapping[str, str]) -> Op:
    """`op` with every input id `a` replaced by `mapping.get(a, a)`."""
    if not any(d in mapping for d in op.inputs()):
        return op

    def ref(p: str | Ref) -> str | Ref:
        return Ref(mapping.get(p.op, p.op)) if isinstance(p, Ref) else p

    if isinstance(op, LLMOp):
        msgs = tuple(Msg(m.role, tuple(ref(p) for p in m.parts)) for m in op.messages)
        return replace(op, messages=msgs)
    if isinstance(op, FormatOp):
        return replace(op, args=tuple((k, ref(v)) for k, v in op.args))
    if isinstance(op, LambdaOp):
        return replace(op, args=tuple(mapping.get(a, a) for a in op.args))
    if isinstance(op, OutputOp):
        return replace(op, source=mapping.get(op.source, op.source))
    raise TypeError(f"op {op.id!r}: cannot remap inputs of kind {op.kind}")
