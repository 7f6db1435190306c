"""The lazy workflow DSL: ops, the builder, graphs and their binding to a batch."""

from helium_lab.dsl.graph import BoundGraph, Graph
from helium_lab.dsl.ops import (
    CacheFetchOp,
    DataOp,
    FormatOp,
    InputOp,
    LambdaOp,
    LLMOp,
    Msg,
    Op,
    OpKind,
    OutputOp,
    OutputProfile,
    Ref,
    SamplingParams,
)
from helium_lab.dsl.workflow import Workflow, history

__all__ = [
    "BoundGraph", "CacheFetchOp", "DataOp", "FormatOp", "Graph", "InputOp", "LLMOp",
    "LambdaOp", "Msg", "Op", "OpKind", "OutputOp", "OutputProfile", "Ref", "SamplingParams",
    "Workflow", "history",
]
