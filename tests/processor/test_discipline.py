"""Dispatch disciplines: OpWise's per-query pipeline and AgentScope's agent servers."""

from __future__ import annotations

import pytest

from helium_lab.cost import TokenStepCost
from helium_lab.dsl import Workflow
from helium_lab.errors import ConfigError
from helium_lab.optimizer import OptimizerConfig, optimize
from helium_lab.processor import CallResult, LLMCall, ProcessorConfig, QueryProcessor, run_echo
from helium_lab.processor.calls import synthetic_output
from helium_lab.processor.discipline import make_discipline
from helium_lab.scheduling import PlanningContext, get_policy
from helium_lab.tokenizer import SyntheticTokenizer
from tests.helpers import fig4_workflow

TOK = SyntheticTokenizer()


def _proc(graph, queries: int, policy: str = "random", **cfg: object) -> QueryProcessor:
    names = sorted({op.name for op in graph.ops.values() if hasattr(op, "name")})
    inputs = [op for op in graph.ops.values() if type(op).__name__ == "InputOp"]
    batch = {op.name: [f"{op.name} {i}" for i in range(queries)] for op in inputs}
    assert names  # the workflow has named ops
    plan = optimize(graph.compile(**batch), OptimizerConfig(prompt_cache=False), tokenizer=TOK)
    sched = get_policy(policy)(PlanningContext(plan, TOK, TokenStepCost.uniform(1)))
    return QueryProcessor(plan, sched, TOK, ProcessorConfig(**cfg))  # type: ignore[arg-type]


def _finish(proc: QueryProcessor, call: LLMCall) -> list[LLMCall]:
    text = synthetic_output(call.prompt_ids, call.output_tokens)
    return proc.on_finished(CallResult(call.call_id, text, tuple(TOK.encode(text)), 0, 0, 0,
                                       1, 0))


def _keys(calls: list[LLMCall]) -> list[tuple[str, int]]:
    return sorted((c.op, c.query) for c in calls)


def test_op_pipeline_runs_a_querys_parallel_branches_one_after_another() -> None:
    # Fig. 4: Op1 and Op2 are independent, Op3 reads Op1. Linearized: Op1, Op2, Op3.
    proc = _proc(fig4_workflow(), 2, "opwise_pipeline", router="least_loaded",
                 discipline="op_pipeline")
    first = proc.start()
    assert _keys(first) == [("Op1", 0), ("Op1", 1)]  # Op2 waits although it is ready
    by = {(c.op, c.query): c for c in first}
    assert _keys(_finish(proc, by[("Op1", 0)])) == [("Op2", 0)]  # not Op3, whose input is ready
    nxt = _finish(proc, by[("Op1", 1)])
    assert _keys(nxt) == [("Op2", 1)]  # queries overlap: query 1 runs beside query 0
    assert _keys(_finish(proc, nxt[0])) == [("Op3", 1)]


def test_ready_discipline_runs_parallel_branches_together() -> None:
    proc = _proc(fig4_workflow(), 2, "opwise_pipeline", router="least_loaded")
    assert _keys(proc.start()) == [("Op1", 0), ("Op1", 1), ("Op2", 0), ("Op2", 1)]


def _two_agents() -> Workflow:
    wf = Workflow("agents")
    q = wf.input("q")
    a = wf.llm([("user", ["Answer: ", q])], name="A", agent="alice")
    b = wf.llm([("user", ["Review: ", a])], name="B", agent="bob")
    wf.output("o", b)
    return wf


def test_agent_server_never_serves_more_than_its_capacity_and_a_waiting_reply_holds_its_slot(
) -> None:
    proc = _proc(_two_agents().build(), 4, router="least_loaded", discipline="agent_servers",
                 agent_capacity=2)
    first = proc.start()
    # alice's server takes A0, A1; A2, A3 queue. bob's server took B0, B1 (waiting for A0, A1).
    assert _keys(first) == [("A", 0), ("A", 1)]
    by = {(c.op, c.query): c for c in first}
    step = _finish(proc, by[("A", 0)])
    assert _keys(step) == [("A", 2), ("B", 0)]  # A0's slot goes to A2; B0's input is ready
    by.update({(c.op, c.query): c for c in step})
    step = _finish(proc, by[("A", 2)])
    # B2's input is ready, but bob's two slots are held: by B0 (running) and by B1, which
    # still waits for A1. B2 must wait although only one of bob's calls computes.
    assert _keys(step) == [("A", 3)]
    assert proc.discipline.busy == {"alice": 2, "bob": 2}  # type: ignore[attr-defined]
    by.update({(c.op, c.query): c for c in step})
    assert _keys(_finish(proc, by[("B", 0)])) == [("B", 2)]  # B0's slot passes to B2
    assert _keys(_finish(proc, by[("A", 1)])) == [("B", 1)]  # B1 held its slot all along


def _peak_inflight(proc: QueryProcessor) -> dict[str, int]:
    """Run to completion, finishing the oldest outstanding call each time; the most calls
    of each op outstanding at once."""
    inflight = list(proc.start())
    peak: dict[str, int] = {}
    while inflight:
        for op in {c.op for c in inflight}:
            peak[op] = max(peak.get(op, 0), sum(c.op == op for c in inflight))
        inflight.extend(_finish(proc, inflight.pop(0)))
    assert proc.done
    return peak


def test_agent_servers_cap_concurrency_per_agent_over_a_whole_run() -> None:
    graph = _two_agents().build()
    capped = _peak_inflight(_proc(graph, 9, router="least_loaded",
                                  discipline="agent_servers", agent_capacity=3))
    assert capped == {"A": 3, "B": 3}
    free = _peak_inflight(_proc(graph, 9, router="least_loaded"))
    assert free["A"] == 9  # without the servers every query's first call goes at once


def test_outputs_identical_under_every_discipline() -> None:
    outs = set()
    for cfg in ({}, {"discipline": "op_pipeline"}, {"discipline": "supersteps"},
                {"discipline": "agent_servers", "agent_capacity": 1}):
        proc = _proc(fig4_workflow(), 3, router="least_loaded", **cfg)
        run_echo(proc, TOK)
        outs.add(repr(proc.outputs()))
        assert len(proc.records) == 9
    assert len(outs) == 1


def test_bad_discipline_config_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"system\.discipline"):
        ProcessorConfig(discipline="actors")
    with pytest.raises(ConfigError, match=r"system\.agent_capacity"):
        ProcessorConfig(discipline="agent_servers")
    with pytest.raises(ConfigError, match=r"system\.agent_capacity"):
        ProcessorConfig(discipline="agent_servers", agent_capacity=-3)
    with pytest.raises(ConfigError, match=r"system\.agent_capacity"):
        make_discipline("agent_servers", 0)


def _layered() -> Workflow:
    """Two branches of unequal length feeding one op: a1 -> a2 -> join, b1 -> join."""
    wf = Workflow("layers")
    q = wf.input("q")
    a1 = wf.llm([("user", ["a1 ", q])], name="a1")
    a2 = wf.llm([("user", ["a2 ", a1])], name="a2")
    b1 = wf.llm([("user", ["b1 ", q])], name="b1")
    c1 = wf.llm([("user", ["c1 ", b1])], name="c1")  # depth 2, beside a2
    wf.output("o", wf.llm([("user", ["join ", a2, c1])], name="join"))
    return wf


def test_supersteps_hold_a_call_until_the_whole_previous_step_of_its_query_finished() -> None:
    proc = _proc(_layered().build(), 2, router="least_loaded", discipline="supersteps")
    first = proc.start()
    assert _keys(first) == [("a1", 0), ("a1", 1), ("b1", 0), ("b1", 1)]
    by = {(c.op, c.query): c for c in first}
    assert _finish(proc, by[("a1", 0)]) == []  # a2's input is ready, but b1 (step 1) runs
    step2 = _finish(proc, by[("b1", 0)])
    assert _keys(step2) == [("a2", 0), ("c1", 0)]  # step 2 of query 0 only
    by.update({(c.op, c.query): c for c in step2})
    assert _finish(proc, by[("a2", 0)]) == []
    assert _keys(_finish(proc, by[("c1", 0)])) == [("join", 0)]


def test_op_pipeline_follows_networkx_generations() -> None:
    # build order a1 a2 b1 c1 join; generations: {a1, b1}, {a2, c1}, {join}
    proc = _proc(_layered().build(), 1, router="least_loaded", discipline="op_pipeline")
    order = []
    calls = proc.start()
    while calls:
        order.append(calls[0].op)
        calls = _finish(proc, calls[0])
    assert order == ["a1", "b1", "a2", "c1", "join"]


def test_system_configs_with_a_bad_discipline_fail_at_load_naming_the_key() -> None:
    from helium_lab.config import SystemConfig

    with pytest.raises(ConfigError, match=r"system\.discipline"):
        SystemConfig.from_dict({"name": "x", "discipline": "actors"})
    with pytest.raises(ConfigError, match=r"system\.agent_capacity"):
        SystemConfig.from_dict({"name": "x", "discipline": "agent_servers",
                                "agent_capacity": -1})


def test_in_order_sends_ready_calls_query_by_query_in_topological_order() -> None:
    # LangGraph's abatch: asyncio starts the queries' tasks first in, first out, and each
    # superstep's nodes in graph order; random order shuffles the same calls
    def emitted(policy: str) -> list[tuple[str, int]]:
        proc = _proc(fig4_workflow(), 3, policy, router="least_loaded",
                     discipline="supersteps")
        return [(c.op, c.query) for c in proc.start()]

    assert emitted("in_order") == [("Op1", 0), ("Op2", 0), ("Op1", 1), ("Op2", 1),
                                   ("Op1", 2), ("Op2", 2)]
    assert sorted(emitted("random")) == sorted(emitted("in_order"))
    assert emitted("random") != emitted("in_order")
