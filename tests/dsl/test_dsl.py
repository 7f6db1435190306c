"""The lazy DSL: building, binding and its errors."""

from __future__ import annotations

import pytest

from helium_lab.dsl import Graph, Msg, Ref, SamplingParams, Workflow
from helium_lab.dsl.ops import InputOp
from helium_lab.errors import BindingError, GraphError


def small() -> tuple[Workflow, Graph]:
    wf = Workflow("small")
    q = wf.input("q")
    a = wf.llm([("user", q)], name="a")
    wf.output("answer", wf.llm([("user", wf.fmt("Revise {a} for {q}", a=a, q=q))], name="b"))
    return wf, wf.build()


def test_build_records_topological_order_and_describe() -> None:
    _, g = small()
    assert g.order == ("input:q", "a", "fmt1", "b", "output:answer")
    text = g.describe()
    assert "b" in text and "fmt1" in text and "5 ops, 2 LLM ops" in text


def test_build_from_terminals_keeps_only_reachable_ops() -> None:
    wf = Workflow("t")
    q = wf.input("q")
    keep = wf.llm([("user", q)], name="keep")
    wf.llm([("user", q)], name="other")
    g = Graph.build([keep])
    assert set(g.ops) == {"input:q", "keep"}


def test_compile_binds_by_name() -> None:
    _, g = small()
    bound = g.compile(q=["x", "y", "z"])
    assert bound.size == 3 and bound.batch["q"] == ("x", "y", "z")


@pytest.mark.parametrize("bindings, match", [
    ({}, r"no binding for input\(s\) \['q'\]"),
    ({"q": ["x"], "extra": ["y"]}, r"binding\(s\) \['extra'\] match no input"),
    ({"q": "x"}, "not a str"),
])
def test_bad_bindings(bindings: dict, match: str) -> None:
    _, g = small()
    with pytest.raises(BindingError, match=match):
        g.compile(**bindings)


def test_unequal_batch_lists() -> None:
    wf = Workflow("two")
    a, b = wf.input("a"), wf.input("b")
    wf.output("o", wf.llm([("user", [a, b])]))
    with pytest.raises(BindingError, match="differ in length"):
        wf.build().compile(a=["1", "2"], b=["1"])


def test_data_op_length_must_match_batch() -> None:
    wf = Workflow("d")
    q = wf.input("q")
    docs = wf.data(["d1", "d2", "d3"], name="docs")
    wf.output("o", wf.llm([("user", [q, docs])]))
    with pytest.raises(BindingError, match="data op 'docs' has 3 values for a batch of 2"):
        wf.build().compile(q=["a", "b"])


def test_op_from_another_workflow_is_rejected() -> None:
    wf1, wf2 = Workflow("one"), Workflow("two")
    q1 = wf1.input("q")
    with pytest.raises(GraphError, match="uses op 'input:q' from another workflow"):
        wf2.llm([("user", q1)])
    _, g = small()
    with pytest.raises(GraphError, match="not part of graph"):
        g.op(q1)


def test_cycle_is_rejected_naming_ops() -> None:
    wf = Workflow("cyc")
    q = wf.input("q")
    a = wf.llm([("user", q)], name="a")
    ops = dict(wf.ops)
    # hand-made records: a reads b, b reads a
    from dataclasses import replace
    b = replace(a, id="b", messages=(Msg("user", (Ref("a"),)),))
    ops["a"] = replace(a, messages=(Msg("user", (Ref("b"),)),))
    ops["b"] = b
    with pytest.raises(GraphError, match=r"cycle through op\(s\) \['a', 'b'\]"):
        Graph("cyc", ops)


def test_nondeterministic_op_marked_cacheable() -> None:
    wf = Workflow("nd")
    q = wf.input("q")
    with pytest.raises(GraphError, match="llm op 'hot' is marked cacheable"):
        wf.llm([("user", q)], name="hot", sampling=SamplingParams(temperature=0.7), cacheable=True)
    with pytest.raises(GraphError, match="lambda op 'pick' is marked cacheable"):
        wf.lam(lambda x: x, q, name="pick", deterministic=False, cacheable=True)
    hot = wf.llm([("user", q)], sampling=SamplingParams(temperature=0.7))
    assert hot.cacheable is False


def test_format_field_without_argument() -> None:
    wf = Workflow("f")
    with pytest.raises(GraphError, match=r"format op 'fmt1': template field\(s\) \['x'\]"):
        wf.fmt("{x}")


def test_input_op_names() -> None:
    _wf, g = small()
    assert [op.name for op in g.inputs if isinstance(op, InputOp)] == ["q"]


@pytest.mark.parametrize(("sampling", "message"), [
    ({"temperature": -0.5}, "temperature must be >= 0"),
    ({"max_tokens": 0}, "max_tokens must be an integer >= 1"),
    ({"max_tokens": 2.5}, "max_tokens must be an integer >= 1"),
    ({"top_p": 0.0}, r"top_p must be in \(0, 1\]"),
    ({"top_p": 1.5}, r"top_p must be in \(0, 1\]"),
    ({"seed": "7"}, "seed must be an integer or None"),
])
def test_sampling_a_real_engine_would_refuse_is_refused_at_build(sampling: dict,
                                                                 message: str) -> None:
    with pytest.raises(GraphError, match=message):
        SamplingParams(**sampling)


def test_messages_a_chat_template_cannot_render_are_refused() -> None:
    wf = Workflow("m")
    q = wf.input("q")
    with pytest.raises(GraphError, match="'empty' has no messages"):
        wf.llm([], name="empty")
    with pytest.raises(GraphError, match="unknown message role 'narrator'"):
        wf.llm([("narrator", q)], name="story")


def test_a_bad_format_template_names_its_op() -> None:
    wf = Workflow("f")
    q = wf.input("q")
    with pytest.raises(GraphError, match=r"format op 'greet': bad template '\{a'"):
        wf.fmt("{a", name="greet", a=q)
