"""Proactive KV for dynamic prefixes: a call's prefix that a later call of its query
extends stays pinned until that call is admitted, then the pin is released."""

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
from sim.kv_cache import KVCacheManager
from sim.models import get_model
from tests.sim.test_sim_kv_cache import req, run_alone

HELIUM = SystemConfig.from_dict({"name": "helium", "policy": "helium", "router": "schedule",
                                 "prewarm": True, "retain_prefixes": True})


def _run(system: SystemConfig, kv_tokens: int) -> tuple[SimResult, Simulation, QueryProcessor]:
    tok = SyntheticTokenizer()
    bound = make_workload("debate", batch_size=24, seed=1, agents=3, rounds=2)
    planned = plan_batch(bound, system, PlannerSettings(), 1, tok)
    proc = QueryProcessor(planned.plan, planned.schedule, tok, system.processor("qwen3-8b"))
    sim = Simulation([EngineConfig.of(kv_tokens // 16, queue_order="priority")],
                     RooflineCost(get_model("qwen3-8b"), get_hardware("h100-nvl")),
                     tokenizer=tok)
    return sim.run(proc), sim, proc


def test_round_two_calls_release_what_round_one_retained() -> None:
    res, sim, proc = _run(HELIUM, 1 << 20)
    calls = [c for c, _ in proc._calls.values()]  # all finished: the map is empty
    assert not calls
    pool = sim.engines[0].kv.pool
    prewarm = {h for ids in proc.prewarm_prompts().get(0, [])
               for h in sim.engines[0].kv.hasher.hashes(ids)}
    assert set(pool.pinned_hashes) <= prewarm  # every retained prefix was released
    pool.check_integrity()
    assert all(r.cached_tokens > 0 for r in res.records if r.op.startswith("r2/"))
    # token accounting: the engine computed exactly each call's uncached prompt and its
    # output but the last token (no prewarm, no preemption here)
    assert not proc.prewarm_prompts() and sim.engines[0].stats()["num_preemptions"] == 0
    computed = sum(x.batched_tokens * x.steps for x in res.timeseries[0])
    assert computed == sum(r.prompt_tokens - r.cached_tokens + r.output_tokens - 1
                           for r in res.records)


@pytest.mark.parametrize("pinned", [True, False])
def test_retained_prefix_survives_lru_until_released(pinned: bool) -> None:
    """A (3 blocks) is freed before F1, so F2's allocation evicts A's blocks first (LRU) —
    unless A's prefix is retained: then F1's blocks go instead and B hits all of A."""
    kv = KVCacheManager(num_gpu_blocks=11, block_size=4)  # 10 usable
    a = req(0, range(12))
    if pinned:
        kv.pin_prefix(a.prompt_ids)
    run_alone(kv, a)
    run_alone(kv, req(1, range(100, 112)))  # F1
    run_alone(kv, req(2, range(200, 224)))  # F2: 6 blocks, 4 never used + 2 evicted
    b = req(3, [*range(12), 7, 7, 7, 7])
    hit = kv.find_cached_prefix(b)
    assert hit.num_tokens == (12 if pinned else 4)
    assert kv.allocate_slots(b, b.num_tokens - hit.num_tokens, hit)
    if pinned:  # the consumer's admission releases the pin: the blocks are ordinary again
        kv.unpin_request_prefix(b, 12)
    assert kv.pool.pinned_hashes == {}
    kv.check_integrity()
