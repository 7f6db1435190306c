"""The engine's decode fast path plays exactly the steps the step-by-step loop would."""

from __future__ import annotations

import pytest

from helium_lab.config import PlannerSettings, SystemConfig
from helium_lab.pipeline import plan_batch
from helium_lab.processor import QueryProcessor
from helium_lab.tokenizer import SyntheticTokenizer
from helium_lab.workflows import make_workload
from sim.config import EngineConfig
from sim.cost_model import RooflineCost
from sim.driver import SimResult, Simulation
from sim.hardware import get_hardware
from sim.models import get_model

COST = RooflineCost(get_model("qwen3-8b"), get_hardware("h100-nvl"))
HELIUM = SystemConfig.from_dict({"name": "helium", "policy": "helium", "router": "schedule",
                                 "prewarm": True})
LANGGRAPH = SystemConfig.from_dict({"name": "langgraph", "passes": [], "policy": "random",
                                    "router": "least_loaded", "prewarm": False})


def _run(system: SystemConfig, kv_tokens: int, fast: bool, overhead: float) -> SimResult:
    tok = SyntheticTokenizer()
    bound = make_workload("debate", batch_size=12, seed=3, agents=3, rounds=2)
    planned = plan_batch(bound, system, PlannerSettings(), 2, tok)
    proc = QueryProcessor(planned.plan, planned.schedule, tok, system.processor("qwen3-8b"))
    cfg = EngineConfig.of(kv_tokens // 16, max_num_batched_tokens=2048)
    sim = Simulation([cfg, cfg], COST, tokenizer=tok, submit_overhead_s=overhead,
                     fast_decode=fast)
    res = sim.run(proc)
    for e in sim.engines:
        e.kv.check_integrity()
        assert e.kv.pool.usage() == 0.0  # every block released: ref counts back to zero
    return res


@pytest.mark.parametrize("system", [HELIUM, LANGGRAPH], ids=["helium", "langgraph"])
@pytest.mark.parametrize("kv_tokens", [1 << 20, 6000], ids=["roomy", "evicting"])
def test_fast_decode_matches_step_by_step(system: SystemConfig, kv_tokens: int) -> None:
    slow = _run(system, kv_tokens, fast=False, overhead=0.003189)
    fast = _run(system, kv_tokens, fast=True, overhead=0.003189)

    def key(res: SimResult) -> list[tuple[object, ...]]:
        return sorted((r.call_id, r.query, r.op, r.worker, r.prompt_tokens, r.cached_tokens,
                       r.output_tokens) for r in res.records)

    assert key(fast) == key(slow)
    by_id = {r.call_id: r for r in slow.records}
    for r in fast.records:
        s = by_id[r.call_id]
        for a, b in ((r.submit_t, s.submit_t), (r.start_t, s.start_t),
                     (r.first_token_t, s.first_token_t), (r.finish_t, s.finish_t)):
            assert a == pytest.approx(b, rel=1e-9, abs=1e-9)
    assert fast.makespan == pytest.approx(slow.makespan, rel=1e-9)
    for w in (0, 1):
        fs, ss = fast.stats[w], slow.stats[w]
        for k in ("prefix_cache_queries", "prefix_cache_hits", "num_preemptions",
                  "evicted_blocks", "num_steps", "num_finished"):
            assert fs[k] == ss[k], k
        assert fs["batch_requests_mean"] == pytest.approx(ss["batch_requests_mean"])
    steps = sum(x.steps for x in fast.timeseries[0])
    assert len(fast.timeseries[0]) < steps  # the fast path did merge steps
    if kv_tokens == 6000:  # memory pressure: merged runs with requests left waiting
        assert sum(fast.stats[w]["evicted_blocks"] for w in (0, 1)) > 0
        assert any(x.steps > 1 and x.waiting > 0 for x in fast.timeseries[0])
