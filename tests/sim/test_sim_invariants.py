"""Property tests: random request streams keep the KV cache consistent and all finish."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from helium_lab.config import EngineSettings
from helium_lab.dsl.ops import SamplingParams
from helium_lab.processor.calls import LLMCall
from sim.kv_cache import KVCacheManager
from sim.kv_holding import StepHolding
from sim.queue_policy import make_queue
from sim.request import SimRequest
from sim.scheduler import Scheduler

PREFIXES = [tuple(range(1000 * k, 1000 * k + 40)) for k in range(3)]

request = st.tuples(st.integers(0, 2), st.integers(0, 40), st.integers(1, 12),
                    st.integers(1, 14), st.integers(0, 25), st.integers(0, 2))


@settings(max_examples=150, deadline=None)
@given(reqs=st.lists(request, min_size=1, max_size=14), blocks=st.integers(4, 24),
       block_size=st.sampled_from([2, 4, 8]), budget=st.integers(1, 48),
       seqs=st.integers(1, 5), order=st.sampled_from(["fcfs", "priority", "lspf"]),
       caching=st.booleans(), pins=st.sets(st.integers(0, 2)), holding=st.booleans())
def test_random_streams_keep_cache_consistent(
        reqs: list[tuple[int, int, int, int, int, int]], blocks: int, block_size: int,
        budget: int, seqs: int, order: str, caching: bool, pins: set[int],
        holding: bool) -> None:
    """`holding`: steps-to-execution eviction, each request an agent of its prefix's."""
    todo = []
    for i, (p, plen, slen, n_out, arrival, prio) in enumerate(reqs):
        prompt = PREFIXES[p][:plen] + tuple(range(50_000 + 100 * i, 50_000 + 100 * i + slen))
        call = LLMCall(i, i, f"agent{p}", 0, prompt, ((len(prompt), False),), n_out,
                       SamplingParams()) if holding else None
        todo.append((arrival, SimRequest(i, prompt, tuple(range(7, 7 + n_out)), prio, call)))
    need = max(-(-(len(r.prompt_ids) + r.max_tokens - 1) // block_size) for _, r in todo)
    num_gpu_blocks = max(blocks, need + 1)
    knobs = EngineSettings(block_size=block_size, max_num_batched_tokens=budget,
                           max_num_seqs=seqs, queue_order=order, enable_prefix_caching=caching)
    kv = KVCacheManager(num_gpu_blocks, block_size, caching)
    for p in sorted(pins):
        kv.pin_prefix(PREFIXES[p])
    if holding and caching:
        kv.pool.set_holding(StepHolding(2))
        assert kv.pool.holding is not None
        kv.pool.holding.update({"agent0": 0, "agent1": 1})
    sched = Scheduler(knobs, kv, make_queue(order))
    finished: list[int] = []
    step = 0
    while step < 26 or sched.has_work():
        for arrival, r in todo:
            if arrival == step:
                sched.add(r)
        if sched.has_work():
            out = sched.schedule(float(step))
            assert out.chunks or out.preempted, "a step with work must make progress"
            assert out.num_batched_tokens <= budget and len(sched.running) <= seqs
            finished += [r.request_id for r in sched.update(out, float(step + 1))]
        kv.check_integrity()
        step += 1
        assert step < 5000, "no progress"
    assert sorted(finished) == list(range(len(todo)))
    assert all(b.ref_cnt == 0 for b in kv.pool.blocks[1:])
    assert kv.pool.get_num_free_blocks() == kv.num_usable_blocks
    for _, r in todo:
        assert r.num_output == r.max_tokens and r.cached_tokens is not None
        assert r.cached_tokens % block_size == 0 and r.cached_tokens < r.num_prompt_tokens
        assert caching or r.cached_tokens == 0
