"""Golden schedules from the paper's worked examples (PAPER.md §3, §4.3)."""

from __future__ import annotations

from helium_lab.cost import TokenStepCost
from helium_lab.optimizer import OptimizerConfig, PromptCache, optimize
from helium_lab.processor import ProcessorConfig, QueryProcessor, run_echo
from helium_lab.scheduling import PlanningContext, get_policy
from helium_lab.tokenizer import SyntheticTokenizer
from tests.helpers import fig4_workflow, fig13_batch, fig13_workflow

TOK = SyntheticTokenizer()


def stages(schedule, worker: int = 0) -> list[list[str]]:
    return [list(s) for s in schedule.stages[worker]]


def test_fig4_schedule() -> None:
    plan = optimize(fig4_workflow().compile(question=["How many inches is 1 meter?"] * 2),
                    tokenizer=TOK)
    sched = get_policy("helium")(PlanningContext(plan, TOK, TokenStepCost.uniform(1)))
    assert stages(sched) == [["Op1"], ["Op2", "Op3"]]


def test_fig13_schedule_after_warmup_day() -> None:
    graph = fig13_workflow()
    cache = PromptCache()
    warm = optimize(graph.compile(**fig13_batch(day=1)), cache=cache, tokenizer=TOK)
    ctx = PlanningContext(warm, TOK, TokenStepCost.uniform(1))
    proc = QueryProcessor(warm, get_policy("helium")(ctx), TOK, ProcessorConfig())
    run_echo(proc, TOK)
    for key, value in proc.cache_updates:
        cache.put(key, value)

    plan = optimize(graph.compile(**fig13_batch(day=2)), cache=cache, tokenizer=TOK)
    # the fundamentals and social analysts read only day-invariant data: fetched, not run
    assert plan.graph.ops["fundamentals"].kind == "cache_fetch"
    assert plan.graph.ops["social"].kind == "cache_fetch"
    sched = get_policy("helium")(PlanningContext(plan, TOK, TokenStepCost.uniform(1)))
    assert stages(sched) == [["1", "2"], ["4"], ["5"], ["3"], ["6"]]


def test_fig13_operator_trt_shape() -> None:
    from helium_lab.trt.build import operator_trt

    plan = optimize(fig13_workflow().compile(**fig13_batch(day=1)),
                    OptimizerConfig(prompt_cache=False), tokenizer=TOK)
    tree = operator_trt(plan, TOK, {op.id: [0] for op in plan.llm_ops})
    groups = sorted(sorted(k[0] for k in g) for g in tree.inner_groups())
    assert groups == [["1", "2"], ["3"], ["4"], ["5"], ["6"], ["fundamentals"], ["social"]]
    deps = {k[0]: sorted(d[0] for d in leaf.deps) for k, leaf in tree.leaves.items()}
    assert deps["3"] == ["1", "2"] and deps["6"] == ["4", "5"]
    # 1 and 2 share the market prompt and the per-stock data; 3 shares only the prompt
    assert tree.shared_weight(("1", 0), ("2", 0)) > tree.shared_weight(("1", 0), ("3", 0)) > 400
