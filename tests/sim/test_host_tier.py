"""The host (CPU DRAM) KV tier: load instead of prefill, write policies, capacities, and
bad input (sim/host_tier.py)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helium_lab.config import EngineSettings, ModelSettings, Orchestration
from helium_lab.errors import ConfigError
from sim.config import EngineConfig
from sim.cost_model import ConstantCost
from sim.driver import simulate
from sim.errors import SimError
from sim.host_tier import HostTier, HostTierConfig
from sim.kv_cache import KVCacheManager
from sim.queue_policy import make_queue
from sim.request import SimRequest
from sim.scheduler import Scheduler
from sim.session import SimSettings, open_session
from tests.sim.fakes import ChainProcessor

BS = 16
# 1000 B per token over 1.6e6 B/s: one block of 16 tokens loads in 0.01 s
TIER = HostTierConfig(num_blocks=100, kv_bytes_per_token=1000, link_bytes_per_s=1.6e6,
                      num_layers=1)


def req(rid: int, prompt: range | list[int], out: int = 1) -> SimRequest:
    return SimRequest(rid, tuple(prompt), tuple(range(9000, 9000 + out)))


def engine(num_gpu_blocks: int, tier: HostTierConfig = TIER) -> tuple[Scheduler, HostTier]:
    knobs = EngineSettings(block_size=BS, host_kv_ratio=1.0)
    kv = KVCacheManager(num_gpu_blocks, BS)
    host = HostTier(tier, BS)
    kv.attach_host(host)
    return Scheduler(knobs, kv, make_queue("fcfs")), host


def run(sched: Scheduler, r: SimRequest) -> dict[int, tuple[int, int]]:
    """Run `r` alone to completion; return its first step's prefills."""
    sched.add(r)
    first = None
    while sched.has_work():
        out = sched.schedule(0.0)
        first = first or out.prefills
        sched.update(out, 0.0)
        sched.kv.check_integrity()
        assert sched.kv.host is not None
        sched.kv.host.check_integrity(sched.kv.pool.cached)
    assert first is not None
    return first


def test_prefix_evicted_from_gpu_is_loaded_from_host_not_prefilled() -> None:
    sched, host = engine(num_gpu_blocks=9)  # 8 usable blocks
    a = range(64)  # 4 full blocks
    run(sched, req(0, a))
    assert host.num_written == 4  # write-through: every cached block copied
    run(sched, req(1, range(1000, 1128)))  # 8 blocks: evicts all of a's
    assert sched.kv.cached_prefix_tokens(a) == 0  # gone from the GPU ...
    assert all(h in host for h in sched.kv.hasher.hashes(a))  # ... kept on the host
    c = req(2, a)
    sched.add(c)
    out = sched.schedule(0.0)
    # the lookup caps at num_tokens - 1: 3 blocks come from the host, 16 tokens prefilled
    assert out.prefills == {2: (16, 48)}
    assert c.cached_tokens == 48
    assert (sched.kv.num_hits, sched.kv.num_host_hits) == (0, 48)
    assert host.num_loaded == 3
    # the step costs its compute plus the 3-block transfer (one layer: no overlap)
    assert host.step_time(0.5) == pytest.approx(0.5 + 3 * 0.01)
    assert host.step_time(0.5) == 0.5  # consumed: the next step pays nothing
    sched.update(out, 0.0)


def test_load_overlaps_compute_layer_by_layer() -> None:
    tier = HostTierConfig(num_blocks=10, kv_bytes_per_token=1000, link_bytes_per_s=1.6e6,
                          num_layers=4)
    host = HostTier(tier, BS)
    host.begin_load([b"x" * 8] * 10)  # 0.1 s of transfer
    assert host.step_time(1.0) == pytest.approx(1.0 + 0.1 / 4)  # compute-bound
    host.begin_load([b"x" * 8] * 10)
    assert host.step_time(0.02) == pytest.approx(0.1 + 0.02 / 4)  # transfer-bound


def test_host_hit_in_engine_time_and_stats() -> None:
    """End to end: the tier's hits show in the engine's stats and time series."""
    proc = ChainProcessor(queries=3, length=3, system_tokens=64, query_tokens=40,
                          output_tokens=5)
    tier = HostTierConfig(num_blocks=64, kv_bytes_per_token=1000, link_bytes_per_s=1.6e6,
                          num_layers=1)
    res = simulate(proc, [EngineConfig.of(14, host_tier=tier)],
                   ConstantCost(step_s=0.1))
    st = res.stats[0]
    assert st["gpu_hit_tokens"] + st["host_hit_tokens"] + st["miss_tokens"] == \
        st["prefix_cache_queries"]
    assert st["host_hit_tokens"] > 0 and st["host_loaded_blocks"] > 0
    samples = res.timeseries[0]
    assert sum(s.host_hit_tokens or 0 for s in samples) == st["host_hit_tokens"]
    assert sum(s.host_load_s or 0.0 for s in samples) == pytest.approx(st["host_load_s"])
    # a step that loaded took its compute plus the transfer (one layer)
    for s in samples:
        if s.host_load_s:
            assert s.dt == pytest.approx(0.1 + s.host_load_s)


def test_tier_off_adds_nothing_to_stats_or_samples() -> None:
    res = simulate(ChainProcessor(), [EngineConfig.of(100)], ConstantCost())
    assert "host_hit_tokens" not in res.stats[0]
    assert all(s.host_load_s is None for s in res.timeseries[0])


def test_write_through_selective_copies_on_second_use_and_write_back_on_eviction() -> None:
    for policy, after_first, after_hit in (("write_through_selective", 0, 4),
                                           ("write_back", 0, 0)):
        tier = HostTierConfig(num_blocks=100, write_policy=policy, kv_bytes_per_token=1000,
                              link_bytes_per_s=1.6e6)
        sched, host = engine(num_gpu_blocks=9, tier=tier)
        run(sched, req(0, range(64)))
        assert host.num_written == after_first
        run(sched, req(1, range(64)))  # 3 blocks hit, the 4th recomputed: all used twice
        assert host.num_written == after_hit
    # write_back: evicting the blocks copies them, and the engine waits for the copies
    run(sched, req(2, range(1000, 1128)))
    assert host.num_written_back >= 4 and all(h in host for h in sched.kv.hasher.hashes(range(64)))
    assert host.stall_s == 0.0 and host.step_time(0.0) > 0.0


def test_write_through_never_drops_a_gpu_resident_copy() -> None:
    """A host full of copies the GPU still caches refuses new writes rather than evict."""
    tier = HostTierConfig(num_blocks=4, kv_bytes_per_token=1000, link_bytes_per_s=1.6e6)
    sched, host = engine(num_gpu_blocks=20, tier=tier)
    run(sched, req(0, range(64)))
    run(sched, req(1, range(1000, 1064)))
    assert host.num_written == 4 and host.num_write_skipped == 4
    assert host.resident == set(sched.kv.hasher.hashes(range(64)))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policy=st.sampled_from(["write_through", "write_through_selective", "write_back"]),
       host_blocks=st.integers(1, 12), gpu_blocks=st.integers(8, 16),
       prompts=st.lists(st.tuples(st.integers(0, 5), st.integers(1, 100)), min_size=1,
                        max_size=12))
def test_capacities_hold_and_written_blocks_stay_findable(
        policy: str, host_blocks: int, gpu_blocks: int,
        prompts: list[tuple[int, int]]) -> None:
    tier = HostTierConfig(num_blocks=host_blocks, write_policy=policy,
                          kv_bytes_per_token=100, link_bytes_per_s=1e9, num_layers=2)
    sched, host = engine(gpu_blocks, tier)
    kv = sched.kv
    for i, (family, length) in enumerate(prompts):
        r = req(i, range(family * 10_000, family * 10_000 + length), out=2)
        if kv.blocks_needed(r.num_tokens) > kv.num_usable_blocks:
            continue
        run(sched, r)
        assert len(host) <= host_blocks  # host capacity
        assert kv.num_usable_blocks - kv.pool.get_num_free_blocks() == 0  # all freed
        # every block the host holds is found by a lookup: GPU-resident or host-only
        for h in host.resident | set(host.lru):
            assert h in kv.pool.cached or h in host.lru
        if policy == "write_through" and len(host) < host_blocks:
            # room was never short: every block the GPU caches has its host copy
            assert set(kv.pool.cached) <= host.resident


def _settings(**engine: object) -> tuple[ModelSettings, EngineSettings]:
    return ModelSettings("qwen3-8b"), EngineSettings.from_dict(engine)


def test_default_size_is_hicache_ratio_times_the_gpu_pool() -> None:
    model, eng = _settings(host_kv_ratio=2.0)
    sim = open_session(model, eng, 1, orchestration=Orchestration(), sim=SimSettings())
    cfg = sim.engines[0].config
    assert cfg.host_tier is not None
    assert cfg.host_tier.num_blocks == 2 * cfg.num_gpu_blocks
    assert cfg.host_tier.link_bytes_per_s == pytest.approx(64e9 * 0.8)


def test_bad_input_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"engine\.host_kv_write_policy.*'write_sideways'"):
        EngineSettings.from_dict({"host_kv_ratio": 2.0, "host_kv_write_policy":
                                  "write_sideways"})
    with pytest.raises(ConfigError, match=r"engine\.host_kv_tokens.*enable_prefix_caching"):
        EngineSettings.from_dict({"host_kv_tokens": 1 << 20, "enable_prefix_caching": False})
    with pytest.raises(ConfigError, match=r"engine\.host_kv_ratio.*host memory"):
        model, eng = _settings(host_kv_ratio=50.0)
        open_session(model, eng, 2, orchestration=Orchestration(), sim=SimSettings())
    with pytest.raises(ConfigError, match=r"engine\.host_kv_tokens.*host memory"):
        model, eng = _settings(host_kv_tokens=10**8)
        open_session(model, eng, 1, orchestration=Orchestration(), sim=SimSettings())
    with pytest.raises(ConfigError, match="enable_prefix_caching"):
        EngineConfig.of(10, enable_prefix_caching=False, host_tier=TIER)
    with pytest.raises(SimError, match="write_policy"):
        HostTierConfig(num_blocks=1, write_policy="nope", link_bytes_per_s=1.0)
