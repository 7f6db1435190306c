"""The paper's workloads: op counts, seeding, prompt sizes and parameter errors."""

from __future__ import annotations

from typing import Any

import pytest

from helium_lab.dsl import BoundGraph, InputOp, LLMOp, Msg, Ref
from helium_lab.errors import ConfigError
from helium_lab.tokenizer import SyntheticTokenizer
from helium_lab.workflows import WORKFLOWS, make_workload, workflow_params
from helium_lab.workflows.synthetic import CONFIGS

TOK = SyntheticTokenizer()

# §12.3: mean prompt tokens per LLM op, mean output tokens
STATS = {
    "mapred_mmlu": (446, 286), "mapred_tatqa": (931, 374), "debate": (642, 329),
    "debate_tatqa": (1175, 390), "reflect": (1048, 257), "iterative": (1282, 318),
    "parallel": (1858, 447), "trading": (3457, 508),
}


def part_tokens(bound: BoundGraph, part: str | Ref, query: int) -> float:
    """Tokens of a message part: static text, a bound input, or an upstream LLM output
    (estimated by its profile mean)."""
    if isinstance(part, str):
        return TOK.count(part)
    op = bound.graph.ops[part.op]
    if isinstance(op, InputOp):
        return TOK.count(bound.input_value(op, query))
    assert isinstance(op, LLMOp), f"unexpected {op.kind} op {op.id!r} in a prompt"
    return op.profile.mean


def prompt_tokens(bound: BoundGraph, op: LLMOp, query: int) -> float:
    return sum(part_tokens(bound, p, query) for m in op.messages for p in m.parts)


def mean_prompt(bound: BoundGraph) -> float:
    ops = bound.graph.llm_ops
    total = sum(prompt_tokens(bound, op, q) for op in ops for q in range(bound.size))
    return total / (len(ops) * bound.size)


def n_llm(name: str, **params: Any) -> int:
    return len(make_workload(name, batch_size=2, **params).graph.llm_ops)


@pytest.mark.parametrize(("name", "params", "count"), [
    ("mapred_mmlu", {}, 15), ("mapred_mmlu", {"experts": 4, "roles": 2}, 5),
    ("mapred_tatqa", {}, 48), ("mapred_tatqa", {"questions": 2}, 16),
    ("debate", {}, 6), ("debate", {"rounds": 3}, 9), ("debate_tatqa", {}, 36),
    ("reflect", {}, 24), ("reflect", {"critics": 3, "questions": 1}, 5),
    ("iterative", {}, 6), ("parallel", {}, 50), ("parallel", {"experts": 2, "chunks": 3}, 9),
    ("trading", {}, 88),
    ("trading", {"branches": 4}, 56), ("trading", {"branches": 12}, 120),
    ("trading", {"branches": 16}, 152), ("trading", {"rounds": 3}, 114),
    ("trading", {"rounds": 4}, 140), ("trading", {"rounds": 5}, 166),
    ("synthetic_mapred", {}, 5), ("synthetic_mapred", {"experts": 8, "config": "P6"}, 9),
    ("synthetic_debate", {}, 6), ("synthetic_debate", {"agents": 4, "rounds": 3}, 12),
])
def test_llm_op_counts(name: str, params: dict[str, object], count: int) -> None:
    assert n_llm(name, **params) == count


@pytest.mark.parametrize("name", sorted(WORKFLOWS))
def test_seeding_and_static_prompts(name: str) -> None:
    a = make_workload(name, batch_size=3, seed=1)
    assert a.batch == make_workload(name, batch_size=3, seed=1).batch
    b = make_workload(name, batch_size=3, seed=2)
    assert a.batch != b.batch
    # static text (the graph) is the same for every seed and batch size
    c = make_workload(name, batch_size=5, seed=2)
    assert [op.params() for op in a.graph.llm_ops] == [op.params() for op in c.graph.llm_ops]
    assert a.meta["workflow"] == name and a.meta["seed"] == 1 and a.size == 3


@pytest.mark.parametrize("name", sorted(WORKFLOWS))
def test_parts_are_whitespace_separated(name: str) -> None:
    """Token counts of parts add up: no word is glued to a neighbouring part."""
    bound = make_workload(name, batch_size=1)
    for op in bound.graph.llm_ops:
        for m in op.messages:
            text = "".join(p if isinstance(p, str) else " REF " for p in m.parts)
            parts = sum(TOK.count(p) if isinstance(p, str) else 1 for p in m.parts)
            assert TOK.count(text) == parts, (op.id, m.role)


@pytest.mark.parametrize("name", sorted(STATS))
def test_token_statistics_near_reference(name: str) -> None:
    bound = make_workload(name, batch_size=12, seed=5)
    prompt, output = STATS[name]
    assert mean_prompt(bound) == pytest.approx(prompt, rel=0.35)
    outs = [op.profile.mean for op in bound.graph.llm_ops]
    assert sum(outs) / len(outs) == pytest.approx(output, rel=0.1)
    for op in bound.graph.llm_ops:
        lo, hi = op.profile.bounds()
        assert hi <= op.sampling.max_tokens == 512 and op.sampling.temperature == 0.0
        assert (lo + hi) / 2 == pytest.approx(op.profile.mean, abs=0.5)


@pytest.mark.parametrize(("params", "prompt"), [
    ({"rounds": 3}, 4337), ({"rounds": 4}, 5261), ({"rounds": 5}, 6206),
    ({"branches": 4}, 3450), ({"branches": 16}, 3470),
])
def test_trading_variant_token_statistics(params: dict[str, Any], prompt: int) -> None:
    bound = make_workload("trading", batch_size=6, **params)
    assert mean_prompt(bound) == pytest.approx(prompt, rel=0.35)


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_synthetic_prompt_sizes_are_exact(config: str) -> None:
    cfg = CONFIGS[config]
    mapred = make_workload("synthetic_mapred", batch_size=2, config=config)
    *experts, summ = mapred.graph.llm_ops
    query = cfg.system + cfg.context + cfg.question
    assert {prompt_tokens(mapred, op, 1) for op in experts} == {query}
    assert prompt_tokens(mapred, summ, 0) == query + len(experts) * cfg.output
    debate = make_workload("synthetic_debate", batch_size=2, config=config)
    r2 = debate.graph.llm_ops[3]
    assert prompt_tokens(debate, r2, 0) == query + 3 * cfg.output
    for op in [*mapred.graph.llm_ops, *debate.graph.llm_ops]:
        assert op.profile.bounds() == (cfg.output, cfg.output)
        assert op.sampling.max_tokens == cfg.output


def test_mmlu_role_duplicates_are_identical_ops() -> None:
    ops = {op.id: op for op in make_workload("mapred_mmlu", batch_size=2).graph.llm_ops}
    for i in range(1, 8):
        a, b = ops[f"expert{i}"], ops[f"expert{i + 7}"]
        assert (a.params(), a.inputs()) == (b.params(), b.inputs())
    assert ops["expert1"].params() != ops["expert2"].params()
    assert len(ops["summarizer"].inputs()) == 15  # question + 14 experts


def test_debate_round_two_extends_round_one() -> None:
    ops = {op.id: op for op in make_workload("debate", batch_size=1).graph.llm_ops}
    r1, r2 = ops["r1/skeptic"], ops["r2/skeptic"]
    n = len(r1.messages)
    assert r2.messages[:n] == r1.messages
    assert r2.messages[n] == Msg("assistant", (Ref(r1.id),))
    assert set(r2.inputs()) >= {"r1/scholar", "r1/pragmatist"}


def test_reflect_chain_reuses_history() -> None:
    ops = {op.id: op for op in make_workload("reflect", batch_size=1).graph.llm_ops}
    analyst, final = ops["q1/analyst"], ops["q1/final"]
    assert final.messages[:len(analyst.messages)] == analyst.messages
    ext, calc = ops["q1/critic/extraction"], ops["q1/critic/calculation"]
    assert calc.messages[:len(ext.messages)] == ext.messages
    assert set(final.inputs()) >= {ext.id, calc.id}


def test_unknown_workflow_names_it_and_lists_known() -> None:
    with pytest.raises(ConfigError, match=r"'nope'.*mapred_mmlu"):
        make_workload("nope", batch_size=1)


@pytest.mark.parametrize(("name", "params", "match"), [
    ("debate", {"experts": 3}, "'experts'.*accepted"),
    ("mapred_mmlu", {"experts": 0}, "'experts'"),
    ("trading", {"branches": "8"}, "'branches'"),
    ("trading", {"day": "June 2nd"}, "'day'"),
    ("synthetic_mapred", {"config": "P9"}, "'config'.*P1"),
    ("iterative", {"batch_size": 0}, "'batch_size'"),
    ("reflect", {"seed": -1}, "'seed'"),
])
def test_bad_parameters_raise_config_error(name: str, params: dict[str, Any],
                                           match: str) -> None:
    kwargs: dict[str, Any] = {"batch_size": 1, **params}
    with pytest.raises(ConfigError, match=match):
        make_workload(name, **kwargs)


def test_workflow_params_lists_defaults() -> None:
    assert workflow_params("trading") == {"branches": 8, "rounds": 2, "day": "2024-06-02"}
    assert workflow_params("mapred_mmlu")["experts"] == 14
