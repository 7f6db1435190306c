"""Driver and engine: exact event logs on SimPy time, prewarm, overheads, bad input."""

from __future__ import annotations

import pytest
import simpy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helium_lab.backend import Engine
from helium_lab.config import EngineSettings, ModelSettings
from helium_lab.errors import ConfigError
from helium_lab.processor.calls import CallRecord, CallResult, LLMCall, synthetic_output
from helium_lab.tokenizer import SyntheticTokenizer, synthetic_text
from sim.config import EngineConfig
from sim.cost_model import ConstantCost
from sim.driver import Simulation, simulate
from sim.engine import SimEngine
from sim.errors import SimError
from sim.hardware import get_hardware
from sim.session import engine_config
from tests.sim.fakes import BurstProcessor, ChainProcessor

BIG = EngineConfig.of(1000)
STEP = ConstantCost(step_s=0.25)


def test_two_chains_exact_log() -> None:
    proc = ChainProcessor(queries=2, length=2, output_tokens=3)
    res = simulate(proc, [BIG], STEP)
    assert proc.log == [("submit", 0), ("submit", 1000), ("finish", 0), ("submit", 1),
                        ("finish", 1000), ("submit", 1001), ("finish", 1), ("finish", 1001)]
    assert list(res.records) == [
        # query 1 hits query 0's system-prompt blocks cached in the same step
        CallRecord(0, 0, "step0", 0, 0.0, 0.0, 0.25, 0.75, 50, 0, 3),
        CallRecord(1000, 1, "step0", 0, 0.0, 0.0, 0.25, 0.75, 50, 32, 3),
        # the follow-up hits the prompt and output blocks of the first call
        CallRecord(1, 0, "step1", 0, 0.75, 0.75, 1.0, 1.5, 53, 48, 3),
        CallRecord(1001, 1, "step1", 0, 0.75, 0.75, 1.0, 1.5, 53, 48, 3),
    ]
    assert res.makespan == 1.5 and res.start_t == 0.0
    assert [(s.t, s.running, s.batched_tokens) for s in res.timeseries[0]] == [
        (0.0, 2, 68), (0.25, 2, 2), (0.5, 2, 2), (0.75, 2, 10), (1.0, 2, 2), (1.25, 2, 2)]
    stats = res.stats[0]
    assert (stats["prefix_cache_queries"], stats["prefix_cache_hits"]) == (206, 128)
    assert stats["num_finished"] == 4 and stats["kv_usage"] == 0.0


def test_outputs_are_synthetic_and_exact_length() -> None:
    seen = []

    class Spy(ChainProcessor):
        def on_finished(self, result: CallResult) -> list[LLMCall]:
            seen.append(result)
            return super().on_finished(result)

    proc = Spy(queries=1, length=1, output_tokens=7)
    simulate(proc, [BIG], STEP)
    prompt = proc.system() + tuple(proc.tok.encode(synthetic_text("query0", 10)))
    text = synthetic_output(prompt, 7)
    assert seen[0].output_text == text
    assert seen[0].output_ids == tuple(SyntheticTokenizer().encode(text))
    assert len(seen[0].output_ids) == 7


def test_submit_overhead_delays_arrival_not_submit_time() -> None:
    res = simulate(ChainProcessor(queries=1, length=2, output_tokens=2), [BIG], STEP,
                   submit_overhead_s=0.125)
    assert [(r.submit_t, r.start_t, r.finish_t) for r in res.records] == [
        (0.0, 0.125, 0.625), (0.625, 0.75, 1.25)]


def test_prewarm_runs_before_start_and_is_hit() -> None:
    proc = ChainProcessor(queries=2, length=1, workers=2, prewarm=True)
    res = simulate(proc, [BIG, BIG], STEP)
    assert res.start_t == 0.25  # one prefill-only step on each worker
    assert [r.cached_tokens for r in res.records] == [32, 32]
    assert [res.stats[w]["num_prewarms"] for w in (0, 1)] == [1.0, 1.0]


def test_runs_are_deterministic() -> None:
    def once() -> tuple[object, ...]:
        proc = ChainProcessor(queries=5, length=3, workers=2, output_tokens=9,
                              priorities={0: 3, 2: 1})
        cfg = EngineConfig.of(12, max_num_batched_tokens=64, max_num_seqs=3,
                           queue_order="priority")
        res = simulate(proc, [cfg, cfg], ConstantCost(0.01, 1e-4))
        return res.records, res.timeseries, res.stats, proc.log

    assert once() == once()


def test_errors_name_the_call_and_sizes() -> None:
    tiny = EngineConfig.of(3, block_size=16)  # 2 usable blocks = 32 tokens
    with pytest.raises(SimError, match=r"call 0 \(op 'step0', query 0\).*need 4 KV blocks"):
        simulate(ChainProcessor(queries=1, length=1), [tiny], STEP)
    short = EngineConfig.of(100, max_model_len=52)
    with pytest.raises(SimError, match=r"call 0 .*50 \+ max_tokens 5 = 55.*max_model_len 52"):
        simulate(ChainProcessor(queries=1, length=1), [short], STEP)
    with pytest.raises(SimError, match="targets worker 1, but only 1 engines"):
        simulate(ChainProcessor(queries=2, length=1, workers=2), [BIG], STEP)
    with pytest.raises(SimError, match="KV cache of 1 blocks is too small"):
        EngineConfig.of(1)
    with pytest.raises(ConfigError, match=r"engine\.queue_order: unknown 'sjf'"):
        EngineConfig.of(10, queue_order="sjf")


def test_processor_that_never_finishes_is_reported() -> None:
    class Stuck(ChainProcessor):
        @property
        def done(self) -> bool:
            return False

    with pytest.raises(SimError, match=r"processor is not done .*2 calls submitted, 2 finished"):
        simulate(Stuck(queries=1, length=2), [BIG], STEP)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(queries=st.integers(1, 6), length=st.integers(1, 3), workers=st.integers(1, 2),
       out=st.integers(1, 20), blocks=st.integers(12, 24), budget=st.integers(8, 80),
       seqs=st.integers(1, 5), order=st.sampled_from(["fcfs", "priority", "lspf"]),
       caching=st.booleans(), prewarm=st.booleans(),
       prio=st.dictionaries(st.integers(0, 5), st.integers(0, 3)))
def test_every_call_completes_once_and_kv_drains(
        queries: int, length: int, workers: int, out: int, blocks: int, budget: int,
        seqs: int, order: str, caching: bool, prewarm: bool, prio: dict[int, int]) -> None:
    proc = ChainProcessor(queries=queries, length=length, workers=workers, system_tokens=20,
                          query_tokens=6, output_tokens=out, priorities=prio, prewarm=prewarm)
    cfg = EngineConfig.of(blocks, block_size=8, max_num_batched_tokens=budget,
                       max_num_seqs=seqs, queue_order=order, enable_prefix_caching=caching)
    res = simulate(proc, [cfg] * workers, ConstantCost(0.01))
    ids = sorted(r.call_id for r in res.records)
    assert ids == sorted(q * 1000 + k for q in range(queries) for k in range(length))
    for r in res.records:
        assert r.submit_t <= r.start_t < r.first_token_t <= r.finish_t
        assert 0 <= r.cached_tokens < r.prompt_tokens and r.output_tokens == out
    for w in range(workers):
        assert res.stats[w]["kv_usage"] == 0.0
        assert all(s.kv_usage <= 1.0 and s.batched_tokens <= budget
                   and s.running <= seqs for s in res.timeseries[w])


def test_engine_config_capacity_in_tokens() -> None:
    model, hw = ModelSettings("qwen3-8b"), get_hardware("h100-nvl")
    for block_size, blocks in ((16, 29_910), (32, 14_955)):
        settings = EngineSettings(kv_capacity_tokens=478_560, block_size=block_size)
        cfg = engine_config(model, settings, hw)
        assert cfg.num_gpu_blocks == blocks and cfg.settings is settings
        assert cfg.max_model_len == 40_960  # Qwen3-8B's max_position_embeddings


def test_simulation_keeps_caches_across_runs_and_rewarms_evicted_pins() -> None:
    sim = Simulation([BIG], STEP)
    day1 = sim.run(ChainProcessor(queries=1, length=1, prewarm=True))
    day2 = sim.run(ChainProcessor(queries=1, length=1, prewarm=True))
    assert (day1.begin_t, day1.start_t, day1.makespan) == (0.0, 0.25, 1.5)
    assert (day2.begin_t, day2.start_t, day2.makespan) == (1.5, 1.5, 1.25)
    assert day2.records[0].cached_tokens == 48  # the whole prompt's full blocks, from day 1
    assert (sim.engines[0].num_prewarms, sim.engines[0].num_prewarms_skipped) == (1, 1)
    assert sum(s.steps for s in day2.timeseries[0]) == 5

    small = Simulation([EngineConfig.of(7, block_size=16)], STEP)
    small.run(ChainProcessor(queries=1, length=1, prewarm=True))  # pins 2 system blocks
    small.run(BurstProcessor(1, 90, 5))  # needs all 6 usable blocks: evicts the pinned ones
    assert small.engines[0].kv.pool.num_pinned_evicted == 2
    again = small.run(ChainProcessor(queries=1, length=1, prewarm=True))
    assert small.engines[0].num_prewarms == 2 and again.start_t > again.begin_t
    assert again.records[0].cached_tokens == 32


def test_sim_engine_implements_the_engine_protocol() -> None:
    results: list[CallResult] = []
    env = simpy.Environment()
    engine: Engine = SimEngine(env, BIG, STEP, SyntheticTokenizer(), results.append)
    proc = ChainProcessor(queries=1, length=1, output_tokens=2)
    (call,) = proc.start()
    engine.submit(call)
    env.run()
    engine.prewarm(proc.system())
    env.run()
    assert [(r.call_id, r.start_t, r.first_token_t, r.finish_t) for r in results] == [
        (0, 0.0, 0.25, 0.5)]
    assert engine.stats()["num_prewarms_skipped"] == 1.0  # the call already cached it
