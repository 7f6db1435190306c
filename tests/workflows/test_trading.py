"""Trading against the reference program (helium_demo bench_programs/trading/helium.py;
docs/decisions.md, Trading): op structure, agents, duplicated chains, day-to-day data,
token statistics, and the calls left on the measured day after CSE and the prompt cache."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

import pytest

from experiments.cli import run_task
from helium_lab.dsl import BoundGraph, InputOp, LLMOp, Msg, Ref
from helium_lab.optimizer.cse import cse
from helium_lab.prompt import Static, segments
from helium_lab.tokenizer import SyntheticTokenizer
from helium_lab.workflows import make_workload
from helium_lab.workflows.trading import PERSONAS
from helium_lab.workflows.trading_data import DAY_INVARIANT, FUNDAMENTALS, MARKET, NEWS, SOCIAL
from tests.experiments.test_experiments import config

TOK = SyntheticTokenizer()


def ops_of(**params: Any) -> dict[str, LLMOp]:
    return {op.id: op for op in make_workload("trading", batch_size=1, **params).graph.llm_ops}


def inputs(op: LLMOp) -> set[str]:
    return set(op.inputs())


def rendered_tokens(bound: BoundGraph, op: LLMOp, query: int) -> float:
    """Prompt tokens as the simulator counts them: the chat-rendered static text and bound
    inputs through the synthetic tokenizer, upstream outputs at their profile mean."""
    n = 0.0
    for seg in segments(bound.graph, op):
        if isinstance(seg, Static):
            n += TOK.count(seg.text)
            continue
        src = bound.graph.ops[seg.op]
        n += (TOK.count(bound.input_value(src, query)) if isinstance(src, InputOp)
              else src.profile.mean)  # type: ignore[attr-defined]
    return n


def per_op_prompt_means(bound: BoundGraph) -> list[float]:
    return [statistics.mean(rendered_tokens(bound, op, q) for q in range(bound.size))
            for op in bound.graph.llm_ops]


# -- structure -----------------------------------------------------------------------------

def test_analyst_documents() -> None:
    ops = ops_of()
    stock, company = "input:stock", "input:company_profile"
    for doc in FUNDAMENTALS:  # company profile in every fundamentals prompt
        assert inputs(ops[f"fundamentals/{doc}"]) == {stock, company, f"input:{doc}"}
    assert FUNDAMENTALS[3] == "insider_sentiment"
    assert inputs(ops["fundamentals/summary"]) == {
        stock, company, *(f"fundamentals/{d}" for d in FUNDAMENTALS)}
    for team, docs in (("market", MARKET), ("news", NEWS), ("social", SOCIAL)):
        for doc in docs:
            assert inputs(ops[f"{team}/{doc}"]) == {stock, f"input:{doc}"}
        assert inputs(ops[f"{team}/summary"]) == {stock, *(f"{team}/{d}" for d in docs)}
    assert (len(MARKET), len(NEWS), len(SOCIAL)) == (2, 5, 3)
    # a team's extractions share the system prompt and the instruction up to the doc name
    news = [ops[f"news/{d}"] for d in NEWS]
    assert len({op.messages[0] for op in news}) == 1
    assert len({op.messages[1].parts[:3] for op in news}) == 1
    fund = [ops[f"fundamentals/{d}"] for d in FUNDAMENTALS]
    assert len({op.messages[1].parts[0] for op in fund}) == 1
    assert len({op.messages[1].parts[1] for op in fund}) == 4


def test_stock_stats_is_the_largest_input() -> None:
    bound = make_workload("trading", batch_size=20, seed=1)
    mean = {f: statistics.mean(TOK.count(v) for v in bound.batch[f]) for f in bound.batch}
    assert max(mean, key=mean.__getitem__) == "stock_stats"


def test_research_debate_is_parallel_and_continues_own_history() -> None:
    ops = ops_of(rounds=3)
    reports = ["fundamentals/summary", "social/summary", "market/summary", "news/summary"]
    bull1, bear1 = ops["research/bull1"], ops["research/bear1"]
    assert bull1.messages[1] == bear1.messages[1]  # one user text, two system prompts
    assert bull1.messages[0] != bear1.messages[0]
    refs = [p.op for p in bull1.messages[1].parts if isinstance(p, Ref)]
    assert refs == ["input:stock", *reports]  # report order: fundamentals, social, market, news
    for r in (2, 3):
        for side, other in (("bull", "bear"), ("bear", "bull")):
            own, prev = ops[f"research/{side}{r}"], ops[f"research/{side}{r - 1}"]
            n = len(prev.messages)
            assert own.messages[:n] == prev.messages
            assert own.messages[n] == Msg("assistant", (Ref(prev.id),))
            assert inputs(own) - inputs(prev) == {prev.id, f"research/{other}{r - 1}"}
    manager = ops["research/manager"]
    transcript = [p.op for p in manager.messages[1].parts if isinstance(p, Ref)]
    assert transcript == ["input:stock"] + [f"research/{s}{r}" for r in (1, 2, 3)
                                            for s in ("bull", "bear")]


def test_chains_risk_debate_judge_and_fund_manager() -> None:
    ops = ops_of()
    assert inputs(ops["desk3/trader"]) == {"input:stock", "research/manager"}
    first = [ops[f"desk3/{role}1"] for role in ("risky", "safe", "neutral")]
    assert len({op.messages[1] for op in first}) == 1  # one user text for the 3 roles
    assert len({op.messages[0] for op in first}) == 3
    refs = [p.op for p in first[0].messages[1].parts if isinstance(p, Ref)]
    assert refs == ["input:stock", "fundamentals/summary", "social/summary", "market/summary",
                    "news/summary", "desk3/trader"]
    for role in ("risky", "safe", "neutral"):
        own, prev = ops[f"desk3/{role}2"], ops[f"desk3/{role}1"]
        assert own.messages[:2] == prev.messages
        assert own.messages[2] == Msg("assistant", (Ref(prev.id),))
        assert [p.op for p in own.messages[3].parts if isinstance(p, Ref)] == [
            "desk3/risky1", "desk3/safe1", "desk3/neutral1"]  # own answer included
    judge = [p.op for p in ops["desk3/judge"].messages[1].parts if isinstance(p, Ref)]
    assert judge == ["input:stock"] + [f"desk3/{role}{r}" for r in (1, 2)
                                       for role in ("risky", "safe", "neutral")]
    fm = [p.op for p in ops["fund_manager"].messages[1].parts if isinstance(p, Ref)]
    assert fm == ["input:stock"] + [f"desk{b}/judge" for b in range(1, 9)]


def test_agents_follow_the_reference_roles() -> None:
    ops = ops_of()
    agents = {oid: op.agent for oid, op in ops.items()}
    assert {agents[f"fundamentals/{d}"] for d in (*FUNDAMENTALS, "summary")} == {
        "fundamentals_analyst"}
    assert agents["social/summary"] == "social_media_analyst"
    assert agents["research/bull1"] == agents["research/bull2"] == "bull_researcher"
    assert agents["research/bear2"] == "bear_researcher"
    assert agents["desk4/trader"] == "trader_arbitrageur_1"
    assert agents["desk8/trader"] == "trader_arbitrageur_2"
    assert agents["desk5/safe1"] == agents["desk5/safe2"] == "safe_analyst_value_trader_2"
    assert agents["desk2/judge"] == "judge_news_trader_1"
    assert agents["fund_manager"] == "fund_manager"
    # one agent per role (per chain for the chains' roles): 4 + 3 + 8 x 5 + 1
    assert len(set(agents.values())) == 48


# -- duplicated chains and CSE -------------------------------------------------------------

@pytest.mark.parametrize(("branches", "rounds", "merged"),
                         [(8, 2, 32), (4, 2, 0), (12, 2, 64), (16, 2, 96), (8, 3, 44)])
def test_duplicate_chains_merge_under_cse(branches: int, rounds: int, merged: int) -> None:
    ops = ops_of(branches=branches, rounds=rounds)
    traders = [ops[f"desk{b + 1}/trader"] for b in range(branches)]
    for b, op in enumerate(traders):  # branch b uses persona b % 4, copies byte-identical
        assert op.agent.startswith(f"trader_{PERSONAS[b % 4]}_")
        assert op.params() == traders[b % 4].params() and op.inputs() == traders[b % 4].inputs()
    assert len({op.messages[0] for op in traders}) == min(branches, 4)
    bound = make_workload("trading", batch_size=1, branches=branches, rounds=rounds)
    graph, alias = cse(bound.graph)
    assert len(bound.graph.llm_ops) - len(graph.llm_ops) == merged
    removed = {oid for oid in alias if oid in ops}
    assert removed == {oid for oid in ops if oid.startswith("desk")
                       and int(oid.split("/")[0][4:]) > 4}
    for oid, kept in alias.items():  # each removed op is its chain b - 4k twin
        desk, rest = oid.split("/")
        assert kept == f"desk{(int(desk[4:]) - 1) % 4 + 1}/{rest}"


# -- data across days ----------------------------------------------------------------------

def test_days_share_fundamentals_and_social() -> None:
    d1 = make_workload("trading", batch_size=4, seed=3, day="2024-06-01")
    d2 = make_workload("trading", batch_size=4, seed=3, day="2024-06-02")
    for field in (*DAY_INVARIANT, "stock"):
        assert d1.batch[field] == d2.batch[field], field
    for field in (*MARKET, *NEWS):
        assert d1.batch[field] != d2.batch[field], field
    assert set(d1.batch) == {"stock", *DAY_INVARIANT, *MARKET, *NEWS}  # no date input
    invariant = {f"input:{f}" for f in (*DAY_INVARIANT, "stock")}
    clean = set(invariant)  # ops whose prompts read day-invariant text only
    for oid in d2.graph.order:
        if isinstance(op := d2.graph.ops[oid], LLMOp) and set(op.inputs()) <= clean:
            clean.add(oid)
    assert sorted(clean - invariant) == sorted([
        *(f"fundamentals/{d}" for d in (*FUNDAMENTALS, "summary")),
        *(f"social/{d}" for d in (*SOCIAL, "summary"))])
    for op in d2.graph.llm_ops:  # and the rest of the graph is the same on both days
        assert op.params() == d1.graph.ops[op.id].params()


@pytest.mark.parametrize(("system", "per_stock"), [
    ("helium", 88 - 9),            # CSE of non-LLM ops only (the reference): all chains run
    ("helium_cse_llm", 88 - 32 - 9),  # CSE of LLM calls drops the 4 duplicated chains
    ("helium_no_pp", 88 - 9),      # no CSE: every duplicated chain runs
    ("langgraph", 88),             # no optimizer passes
])
def test_measured_day_calls_after_warmup(system: str, per_stock: int, tmp_path: Path) -> None:
    """Warm-up day 2024-06-01 then the measured day 2024-06-02 through the planner (echo
    backend): the prompt cache replaces exactly the 9 fundamentals and social calls."""
    cfg = config("trading", f"system={system}", "backend=echo", "batch_size=3")
    assert cfg["warmup"] == {"day": "2024-06-01"}
    summary = run_task(cfg, tmp_path)
    assert summary["num_llm_calls"] == 3 * per_stock
    calls = [json.loads(line) for line in (tmp_path / "calls.jsonl").read_text().splitlines()]
    cached = ("fundamentals/", "social/")
    assert any(c["op"].startswith(cached) for c in calls) == (system == "langgraph")
    assert {f"market/{d}" for d in MARKET} <= {c["op"] for c in calls}


# -- token statistics ----------------------------------------------------------------------

@pytest.mark.parametrize(("params", "mean"), [
    ({}, 3457), ({"branches": 4}, 3473), ({"branches": 12}, 3459), ({"branches": 16}, 3447),
    ({"rounds": 3}, 4337),
])
def test_per_op_prompt_tokens_match_the_profile(params: dict[str, Any], mean: float) -> None:
    """Per-op mean prompt tokens over 30 stocks vs the reference profile: mean 3457 over
    the 88 ops, smallest 774 (news trader), largest 18615 (stock stats extraction);
    outputs 508.5 (512 everywhere but the arbitrageur trader, 356.5)."""
    bound = make_workload("trading", batch_size=30, seed=0, **params)
    means = per_op_prompt_means(bound)
    assert statistics.mean(means) == pytest.approx(mean, rel=0.15)
    assert min(means) == pytest.approx(774, rel=0.25)
    assert max(means) == pytest.approx(18615, rel=0.25)
    outs = [op.profile.mean for op in bound.graph.llm_ops]
    assert statistics.mean(outs) == pytest.approx(508.5, rel=0.01)


def test_static_prompt_sizes_match_the_profile() -> None:
    """Ops with no per-stock document in the prompt have the profiled prompt length exactly
    (their static text plus upstream outputs at the profile means)."""
    bound = make_workload("trading", batch_size=1)
    got = dict(zip((op.id for op in bound.graph.llm_ops), per_op_prompt_means(bound),
                   strict=True))
    expected = {
        "market/summary": 1921, "news/summary": 2838, "social/summary": 1859,
        "research/bull1": 2313, "research/bear1": 2326, "research/bull2": 3368,
        "research/bear2": 3381, "research/manager": 2288,
        "desk1/trader": 780, "desk2/trader": 774, "desk3/trader": 778, "desk4/trader": 778,
        "desk1/risky1": 2820, "desk1/safe1": 2787, "desk1/neutral1": 2760,
        "desk1/risky2": 4921, "desk1/safe2": 4888, "desk1/neutral2": 4861,
        "desk1/judge": 3366, "fund_manager": 4387,
    }
    assert {k: got[k] for k in expected} == expected
    ops = {op.id: op for op in bound.graph.llm_ops}
    assert ops["desk4/trader"].profile.mean == ops["desk8/trader"].profile.mean == 356.5
    assert {op.profile.bounds() for k, op in ops.items() if not k.startswith(
        ("desk4/trader", "desk8/trader"))} == {(512, 512)}
