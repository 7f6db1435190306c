"""Evaluation of non-LLM ops for one query: the semantics every backend shares."""

from __future__ import annotations

from collections.abc import Callable

from helium_lab.dsl.graph import BoundGraph
from helium_lab.dsl.ops import (
    CacheFetchOp,
    DataOp,
    FormatOp,
    InputOp,
    LambdaOp,
    Op,
    OutputOp,
)


def op_value(op: Op, query: int, bound: BoundGraph, value: Callable[[str], str]) -> str:
    """The value of a non-LLM op for `query`, given `value(op_id)` for its inputs."""
    if isinstance(op, InputOp):
        return bound.input_value(op, query)
    if isinstance(op, DataOp):
        return op.value(query)
    if isinstance(op, FormatOp):
        return "".join(p if isinstance(p, str) else value(p.op) for p in op.pieces())
    if isinstance(op, LambdaOp):
        try:
            out = op.fn(*(value(a) for a in op.args))
        except Exception as e:  # a user function failed: say which op
            raise RuntimeError(f"lambda op {op.id!r} ({op.fn_name}) failed on query {query}: {e}"
                               ) from e
        if not isinstance(out, str):
            raise TypeError(f"lambda op {op.id!r} returned {type(out).__name__}, not str")
        return out
    if isinstance(op, OutputOp):
        return value(op.source)
    if isinstance(op, CacheFetchOp):
        return op.values[query]
    raise TypeError(f"op {op.id!r} of kind {op.kind} is not evaluated locally")

