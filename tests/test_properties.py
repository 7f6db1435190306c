"""Property tests over random workflow DAGs (hypothesis).

* every needed LLM call runs exactly once per query, after all its inputs finished;
* list schedules respect dependencies and precedence delays;
* pruning, CSE and prompt-cache rewriting never change final outputs (echo engine);
* each call's template is reconstructed exactly from its TRT path.
"""

from __future__ import annotations

import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helium_lab.cost import TokenStepCost
from helium_lab.dsl import Graph, SamplingParams, Workflow
from helium_lab.optimizer import OptimizerConfig, PromptCache, optimize
from helium_lab.processor import ProcessorConfig, QueryProcessor, run_echo
from helium_lab.prompt import Slot, segments
from helium_lab.scheduling import POLICIES, PlanningContext, get_policy
from helium_lab.scheduling.evaluation import evaluate_schedule
from helium_lab.scheduling.tokensteps import CallInstance
from helium_lab.tokenizer import SyntheticTokenizer, synthetic_text
from helium_lab.trt.build import operator_trt

TOK = SyntheticTokenizer()
ROLES = [synthetic_text(f"role{i}", 40) for i in range(3)]


@st.composite
def workflows(draw: st.DrawFn) -> tuple[Graph, dict[str, list[str]]]:
    """A random DAG of inputs, formats, lambdas and LLM ops, with duplicates and dead ops."""
    wf = Workflow("random")
    values = [wf.input("q"), wf.input("ctx")]
    n = draw(st.integers(2, 9))
    for i in range(n):
        kind = draw(st.sampled_from(["llm", "llm", "llm", "fmt", "lam", "dup"]))
        srcs = draw(st.lists(st.integers(0, len(values) - 1), min_size=1, max_size=3))
        args = [values[j] for j in srcs]
        if kind == "fmt":
            values.append(wf.fmt(" | ".join(f"{{a{k}}}" for k in range(len(args))),
                                 **{f"a{k}": a for k, a in enumerate(args)}))
        elif kind == "lam":
            values.append(wf.lam(lambda *xs: " ".join(x[:40] for x in xs), *args))
        else:
            role = ROLES[draw(st.integers(0, 2))]
            temp = draw(st.sampled_from([0.0, 0.0, 0.0, 0.8]))
            msgs = [("system", role), ("user", [*args, f" step {i % 3}"])]
            values.append(wf.llm(msgs, sampling=SamplingParams(temperature=temp, max_tokens=24)))
            if kind == "dup":  # the same call defined twice
                values.append(wf.llm(msgs, sampling=SamplingParams(temperature=temp,
                                                                   max_tokens=24)))
    outs = draw(st.lists(st.integers(2, len(values) - 1), min_size=1, max_size=3, unique=True))
    for k, j in enumerate(outs):
        wf.output(f"out{k}", values[j])
    size = draw(st.integers(1, 3))
    batch = {"q": [synthetic_text(f"q{i}", 8) for i in range(size)],
             "ctx": [synthetic_text(f"c{i % 2}", 12) for i in range(size)]}
    return wf.build(), batch


def run(graph: Graph, batch: dict[str, list[str]], cfg: OptimizerConfig, policy: str,
        workers: int, cache: PromptCache | None = None) -> QueryProcessor:
    plan = optimize(graph.compile(**batch), cfg, cache=cache, tokenizer=TOK)
    sched = get_policy(policy)(PlanningContext(plan, TOK, TokenStepCost.uniform(workers)))
    proc = QueryProcessor(plan, sched, TOK, ProcessorConfig())
    run_echo(proc, TOK)
    return proc


SETTINGS = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def _deterministic(graph: Graph) -> bool:
    return all(op.sampling.deterministic for op in graph.llm_ops)


@SETTINGS
@given(workflows(), st.sampled_from(sorted(POLICIES)), st.integers(1, 2))
def test_rewrites_preserve_outputs_and_calls_run_once(wf, policy, workers) -> None:
    graph, batch = wf
    # the synthetic "model" is greedy: sampled ops are deterministic stand-ins here, which is
    # exactly why they must never be merged or cached (we check they are not)
    base = run(graph, batch, OptimizerConfig(False, False, False, False), "querywise", 1)
    full = run(graph, batch, OptimizerConfig(), policy, workers)
    assert full.outputs() == base.outputs()
    seen = [(r.op, r.query) for r in full.records]
    assert len(seen) == len(set(seen))  # exactly once
    finish = {(r.op, r.query): r.finish_t for r in full.records}
    for r in full.records:
        for dep in _llm_deps(full.graph, r.op):
            if (dep, r.query) in finish:
                assert finish[(dep, r.query)] <= r.submit_t
    # a second batch over a warm prompt cache: still the same outputs, never more calls
    cache = PromptCache()
    warm = run(graph, batch, OptimizerConfig(), policy, workers, cache)
    for k, v in warm.cache_updates:
        cache.put(k, v)
    again = run(graph, batch, OptimizerConfig(), policy, workers, cache)
    assert again.outputs() == base.outputs()
    if _deterministic(graph):
        assert again.records == []  # everything came from the cache
    assert len(again.records) <= len(warm.records)


def _llm_deps(graph: Graph, op: str) -> set[str]:
    from helium_lab.trt.build import llm_dependencies

    return set(llm_dependencies(graph)[op])


@SETTINGS
@given(workflows(), st.sampled_from(sorted(POLICIES)))
def test_token_step_schedules_respect_dependencies_and_delays(wf, policy) -> None:
    graph, batch = wf
    plan = optimize(graph.compile(**batch), OptimizerConfig(prompt_cache=False), tokenizer=TOK)
    cost = TokenStepCost.uniform(1)
    inst = CallInstance.from_plan(plan, TOK)
    ev = evaluate_schedule(get_policy(policy)(PlanningContext(plan, TOK, cost)), inst, cost)
    assert sorted(j for o in ev.orders for j in o) == list(range(len(inst)))
    for j, deps in enumerate(inst.deps):
        for i in deps:
            assert ev.start[j] >= ev.end[i] + cost.delay(inst.len_out[i]) - 1e-6
    order = ev.orders[0]
    for a, b in itertools.pairwise(order):
        assert ev.start[b] >= ev.end[a] - 1e-6  # one worker runs one call at a time


@SETTINGS
@given(workflows())
def test_templates_reconstructed_from_trt_paths(wf) -> None:
    graph, batch = wf
    plan = optimize(graph.compile(**batch), OptimizerConfig(prompt_cache=False), tokenizer=TOK)
    tree = operator_trt(plan, TOK, {op.id: [0] for op in plan.llm_ops})
    for op in plan.llm_ops:
        expect: list[int] = []
        for seg in segments(plan.graph, op):
            expect += ([tree.slot(seg.op, 0)] if isinstance(seg, Slot)
                       else TOK.encode(seg.text))
        assert tree.template((op.id, 0)) == expect
    calls = CallInstance.from_plan(plan, TOK)
    for key in calls.keys:
        assert calls.tree.prompt_weight(key) == sum(
            1 if a >= 0 else calls.tree.slot_weight[a] for a in calls.tree.template(key))


def test_synthetic_text_is_pinned() -> None:
    """The synthetic words are part of every simulated prompt (and of stored traces and
    prompt caches): a faster implementation must give the same text. The digest below is
    of the original per-word implementation's output."""
    import hashlib

    from helium_lab.tokenizer import synthetic_text

    assert synthetic_text("golden", 3) == "w23469 w28426 w47661"
    assert hashlib.sha256(synthetic_text("golden", 1000).encode()).hexdigest() == (
        "e8424dde0a3207cce9b0e98ab19c10132522d1e5109187cdc23944aea604f6c6")
    assert synthetic_text("golden", 0) == "" and synthetic_text("x", 17, "t").count(" ") == 16
