"""The query processor as a state machine, driven by hand and by the echo engine."""

from __future__ import annotations

import dataclasses

import pytest

from helium_lab.cost import TokenStepCost
from helium_lab.errors import ConfigError
from helium_lab.optimizer import OptimizerConfig, optimize
from helium_lab.processor import CallResult, ProcessorConfig, QueryProcessor, run_echo
from helium_lab.processor.calls import prompt_key, synthetic_completion, synthetic_output
from helium_lab.scheduling import PlanningContext, get_policy
from helium_lab.tokenizer import SyntheticTokenizer
from tests.helpers import fig4_workflow

TOK = SyntheticTokenizer()


def processor(policy: str = "helium_alg1", workers: int = 1, queries: int = 2,
              **cfg: object) -> QueryProcessor:
    plan = optimize(fig4_workflow().compile(question=[f"q{i} why" for i in range(queries)]),
                    OptimizerConfig(prompt_cache=False), tokenizer=TOK)
    sched = get_policy(policy)(PlanningContext(plan, TOK, TokenStepCost.uniform(workers)))
    return QueryProcessor(plan, sched, TOK, ProcessorConfig(**cfg))  # type: ignore[arg-type]


def finish(proc: QueryProcessor, call, t: float):
    text = synthetic_output(call.prompt_ids, call.output_tokens)
    return proc.on_finished(CallResult(call.call_id, text, tuple(TOK.encode(text)), t, t, t,
                                       t + 1, 0))


def test_state_machine_renders_downstream_as_soon_as_inputs_complete() -> None:
    proc = processor(queries=2)
    first = proc.start()
    # Op1 and Op2 of both queries are ready; Op3 waits for Op1 of its own query
    assert [(c.op, c.query) for c in first] == [("Op1", 0), ("Op1", 1), ("Op2", 0), ("Op2", 1)]
    nxt = finish(proc, first[0], 0.0)
    assert [(c.op, c.query) for c in nxt] == [("Op3", 0)]  # no batch barrier
    answer = TOK.encode(synthetic_output(first[0].prompt_ids, first[0].output_tokens))
    ids = list(nxt[0].prompt_ids)
    assert any(ids[i:i + len(answer)] == answer for i in range(len(ids)))  # Op1's answer spliced
    assert not proc.done
    for c in first[1:] + nxt:
        for more in finish(proc, c, 1.0):
            finish(proc, more, 2.0)
    assert proc.done and len(proc.records) == 6


def test_back_pressure_limits_outstanding_calls() -> None:
    proc = processor(queries=3, max_inflight_per_worker=2)
    first = proc.start()
    assert len(first) == 2
    assert len(finish(proc, first[0], 0.0)) == 1  # one slot freed, one call admitted


def test_vllm_style_one_call_at_a_time() -> None:
    proc = processor(policy="querywise", queries=2, max_inflight_total=1)
    order = []
    calls = proc.start()
    while calls:
        assert len(calls) == 1
        order.append((calls[0].op, calls[0].query))
        calls = finish(proc, calls[0], float(len(order)))
    assert order == [("Op1", 0), ("Op2", 0), ("Op3", 0), ("Op1", 1), ("Op2", 1), ("Op3", 1)]


def test_outputs_identical_across_policies_routers_and_workers() -> None:
    results = set()
    for policy in ("helium", "helium_alg1", "querywise", "opwise", "random", "lspf"):
        for workers in (1, 2):
            for router in ("schedule", "least_loaded", "prefix_affinity", "round_robin"):
                proc = processor(policy, workers, queries=3, router=router)
                run_echo(proc, TOK)
                results.add(repr(proc.outputs()))
                assert len(proc.records) == 9
                assert {r.worker for r in proc.records} <= set(range(workers))
    assert len(results) == 1


def test_prewarm_prompts_are_the_calls_leading_tokens() -> None:
    proc = processor(queries=1, workers=2)
    pre = proc.prewarm_prompts()
    calls = proc.start()
    for c in calls:
        assert any(c.prompt_ids[:len(p)] == p for p in pre[c.worker])


def test_bad_router() -> None:
    with pytest.raises(ConfigError, match="unknown router 'fastest'"):
        ProcessorConfig(router="fastest")


def test_refined_small_batch_runs_in_its_explicit_order() -> None:
    proc = processor("helium", queries=2, max_inflight_total=1)
    assert proc.schedule.call_order is not None and proc.schedule.dispatch == "strict"
    order = []
    calls = proc.start()
    while calls:
        order.append((calls[0].op, calls[0].query))
        calls = finish(proc, calls[0], float(len(order)))
    assert order == sorted(proc.schedule.call_order, key=proc.schedule.call_order.__getitem__)


def test_lambda_reading_one_op_twice_after_cse_completes() -> None:
    from helium_lab.dsl import Workflow

    wf = Workflow("twice")
    q = wf.input("q")
    a = wf.llm([("user", q)], name="a")
    b = wf.llm([("user", q)], name="b")  # CSE merges b into a: the lambda reads a twice
    wf.output("o", wf.lam(lambda x, y: x + "|" + y, a, b, name="join"))
    plan = optimize(wf.build().compile(q=["x"]), tokenizer=TOK)
    assert plan.aliases == {"b": "a"}
    sched = get_policy("helium")(PlanningContext(plan, TOK, TokenStepCost.uniform(1)))
    proc = QueryProcessor(plan, sched, TOK)
    run_echo(proc, TOK)
    left, right = proc.outputs()[0]["o"].split("|")
    assert left == right and len(proc.records) == 1


def test_synthetic_completion_matches_encoding_the_synthetic_output() -> None:
    calls = processor(queries=3).start()
    assert all(c.prompt_key == prompt_key(c.prompt_ids) for c in calls)  # by the processor
    for call in calls:
        text, ids = synthetic_completion(call, TOK)
        assert text == synthetic_output(call.prompt_ids, call.output_tokens)
        assert ids == tuple(TOK.encode(text)) and len(ids) == call.output_tokens
        unseeded = dataclasses.replace(call, prompt_key=b"")
        assert synthetic_completion(unseeded, TOK) == (text, ids)
