"""KVFlow's deferred host loads (sim/host_loads.py): a request whose prefix is on the host
waits while it loads beside the forward passes, other requests run meanwhile, and it is
then admitted with a GPU hit and no transfer in its step."""

from __future__ import annotations

import pytest

from helium_lab.config import EngineSettings
from helium_lab.dsl.ops import SamplingParams
from helium_lab.errors import ConfigError
from helium_lab.processor.calls import CallResult, LLMCall
from helium_lab.processor.step_graph import FAR_FUTURE
from sim.config import EngineConfig
from sim.cost_model import ConstantCost
from sim.driver import simulate
from sim.errors import SimError
from sim.host_tier import HostTier, HostTierConfig
from sim.kv_cache import KVCacheManager
from sim.queue_policy import make_queue
from sim.request import SimRequest
from sim.scheduler import Scheduler
from tests.sim.fakes import ChainProcessor

BS = 16
# 1000 B per token over 1.6e6 B/s: one block of 16 tokens loads in 0.01 s
TIER = HostTierConfig(num_blocks=100, kv_bytes_per_token=1000, link_bytes_per_s=1.6e6,
                      num_layers=1)


def req(rid: int, prompt: range | list[int], out: int = 1) -> SimRequest:
    return SimRequest(rid, tuple(prompt), tuple(range(9000, 9000 + out)))


def deferred_engine(num_gpu_blocks: int) -> tuple[Scheduler, HostTier]:
    settings = EngineSettings(block_size=BS, host_kv_ratio=1.0, host_kv_load="deferred")
    kv = KVCacheManager(num_gpu_blocks, BS)
    host = HostTier(TIER, BS)
    kv.attach_host(host, deferred=True)
    return Scheduler(settings, kv, make_queue("fcfs")), host


def drain(sched: Scheduler, now: float = 0.0) -> None:
    while sched.has_work():
        out = sched.schedule(now)
        sched.update(out, now)
        check(sched)


def check(sched: Scheduler) -> None:
    sched.kv.check_integrity()
    loads = sched.kv.loads
    assert sched.kv.host is not None and loads is not None
    sched.kv.host.check_integrity(sched.kv.pool.cached, loads.loading)


def evicted_prefix(sched: Scheduler) -> range:
    """Cache a 4-block prompt, then push it off the GPU (it stays on the host)."""
    a = range(64)
    sched.add(req(0, a))
    drain(sched)
    sched.add(req(1, range(1000, 1000 + 12 * BS - 1)))  # all 12 blocks: evicts a's
    drain(sched)
    assert sched.kv.cached_prefix_tokens(a) == 0
    return a


def test_host_hit_waits_for_its_load_while_others_run_then_hits_the_gpu() -> None:
    sched, host = deferred_engine(num_gpu_blocks=13)  # 12 usable blocks
    a = evicted_prefix(sched)
    c, other = req(2, a), req(3, range(5000, 5020))
    sched.add(c)
    sched.add(other)
    out = sched.schedule(1.0)
    # c is passed over (its 3 host blocks start loading), the request behind it runs
    assert [r.request_id for r in out.requests] == [3]
    loads = sched.kv.loads
    assert loads is not None and len(loads) == 1
    assert loads.next_done() == pytest.approx(1.0 + 3 * 0.01)
    assert host.step_time(0.5) == 0.5  # the step pays no transfer
    assert c in list(sched.waiting)
    sched.update(out, 1.0)
    check(sched)
    # before the load ends c keeps waiting (and starts no second load)
    out = sched.schedule(1.02)
    assert c not in out.requests and len(loads) == 1
    sched.update(out, 1.02)
    # once it ended c is admitted with a GPU hit of 3 blocks, prefilling one
    out = sched.schedule(1.03)
    assert c in out.requests
    assert out.prefills[2] == (16, 48)
    assert c.cached_tokens == 48
    assert sched.kv.num_host_hits == 0 and loads.num_deferred_blocks == 3
    sched.update(out, 1.03)
    drain(sched, 1.03)


def test_loads_share_one_link_in_order() -> None:
    sched, _ = deferred_engine(num_gpu_blocks=13)
    evicted_prefix(sched)
    loads = sched.kv.loads
    assert loads is not None
    assert sched.kv.host is not None
    hashes_a = sched.kv.hasher.hashes(range(64))[:2]
    hashes_b = sched.kv.hasher.hashes(range(64))[2:4]
    assert loads.start(2.0, hashes_a, prefetch=True)
    assert loads.start(2.0, hashes_b, prefetch=True)  # queued behind the first
    assert loads.take_started() == [pytest.approx(2.02), pytest.approx(2.04)]
    loads.complete(2.03)
    assert len(loads) == 1 and sched.kv.cached_prefix_tokens(range(64)) == 32
    check(sched)


def test_load_that_does_not_fit_is_denied_and_changes_nothing() -> None:
    sched, _ = deferred_engine(num_gpu_blocks=13)
    evicted_prefix(sched)
    loads = sched.kv.loads
    assert loads is not None
    hold = req(9, range(7000, 7000 + 12 * BS - 1))  # takes all 12 blocks
    sched.add(hold)
    sched.schedule(0.0)
    free = sched.kv.pool.get_num_free_blocks()
    assert not loads.start(0.0, sched.kv.hasher.hashes(range(64))[:3], prefetch=False)
    assert loads.num_denied == 1 and len(loads) == 0
    assert sched.kv.pool.get_num_free_blocks() == free
    check(sched)


def test_engine_waits_for_loads_when_nothing_else_can_run() -> None:
    """End to end: with every waiting request on a load the engine sleeps until the load
    ends instead of reporting a stall; outputs and hit counts stay consistent."""
    for mode in ("inline", "deferred"):
        proc = ChainProcessor(queries=3, length=3, system_tokens=64, query_tokens=40,
                              output_tokens=5)
        res = simulate(proc, [EngineConfig.of(14, host_tier=TIER,
                                           host_kv_load=mode)],
                       ConstantCost(step_s=0.1))
        st = res.stats[0]
        assert st["num_finished"] == 9
        if mode == "deferred":
            assert st["host_deferred_loaded_blocks"] > 0
            assert st["host_hit_tokens"] == 0  # loaded before admission: GPU hits
        else:
            assert st["host_hit_tokens"] > 0 and "host_deferred_loaded_blocks" not in st


def test_bad_load_mode_and_deferred_without_tier_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"engine\.host_kv_load must be one of"):
        EngineConfig.of(10, host_tier=TIER, host_kv_load="eager")
    with pytest.raises(ConfigError, match=r"engine\.host_kv_load=deferred"):
        EngineSettings.from_dict({"host_kv_load": "deferred"})
    with pytest.raises(ConfigError, match="host_kv_load"):
        EngineSettings.from_dict({"host_kv_load": "later", "host_kv_ratio": 1.0})
    with pytest.raises(ConfigError, match="host_kv_prefetch_steps"):
        EngineSettings.from_dict({"host_kv_prefetch_steps": 2, "host_kv_ratio": 1.0})
    with pytest.raises(ConfigError, match="host_kv_prefetch_steps"):
        EngineSettings.from_dict({"host_kv_prefetch_steps": -1, "host_kv_ratio": 1.0,
                                  "host_kv_load": "deferred"})
    with pytest.raises(ConfigError, match="host_kv_prefetch_steps"):
        EngineConfig.of(10, host_tier=TIER, host_kv_prefetch_steps=2)
    deferred = EngineSettings(host_kv_ratio=1.0, host_kv_load="deferred")
    with pytest.raises(SimError, match="host_tier must be given exactly when"):
        EngineConfig(10, deferred)  # the settings ask for a tier that was not sized
    with pytest.raises(SimError, match="host_tier must be given exactly when"):
        EngineConfig(10, EngineSettings(), host_tier=TIER)


def test_prewarm_without_pin_is_cached_but_not_pinned() -> None:
    import simpy

    from helium_lab.tokenizer import SyntheticTokenizer
    from sim.engine import SimEngine

    env = simpy.Environment()
    eng = SimEngine(env, EngineConfig.of(20, prewarm_pin="none"),
                    ConstantCost(step_s=0.1), SyntheticTokenizer(), lambda r: None)
    eng.prewarm(tuple(range(64)))
    env.run()
    assert eng.kv.cached_prefix_tokens(range(64)) == 64
    assert not eng.kv.pool.pinned_hashes


def test_idle_engine_sleeps_until_the_load_ends() -> None:
    """The only waiting request awaits its load: the engine sleeps until the load ends
    (no stall error), then admits it with a GPU hit."""
    import simpy

    from helium_lab.tokenizer import SyntheticTokenizer
    from sim.engine import SimEngine

    env = simpy.Environment()
    eng = SimEngine(env, EngineConfig.of(13, prewarm_pin="none", host_tier=TIER,
                                      host_kv_load="deferred"),
                    ConstantCost(step_s=0.1), SyntheticTokenizer(), lambda r: None)
    a = tuple(range(64))
    eng.prewarm(a)
    env.run()
    eng.prewarm(tuple(range(1000, 1000 + 12 * BS)))  # evicts a's blocks from the GPU
    env.run()
    assert eng.kv.cached_prefix_tokens(a) == 0
    t0 = env.now
    eng.prewarm(a)  # 3 of its blocks on the host: loaded first (0.03 s), then one step
    env.run()
    assert env.now == pytest.approx(t0 + 3 * 0.01 + 0.1)
    assert eng.stats()["host_deferred_loaded_blocks"] == 3
    assert eng.kv.cached_prefix_tokens(a) == 64


def _call(cid: int, op: str, prompt: tuple[int, ...]) -> LLMCall:
    return LLMCall(call_id=cid, query=cid, op=op, worker=0, prompt_ids=prompt,
                   pieces=((len(prompt), False),), output_tokens=1, sampling=SamplingParams())


def test_prefetch_issued_early_enough_hides_the_transfer() -> None:
    """Agent X's prefix was evicted to the host. With a step-graph update naming X one
    step away, its blocks load back before X's next request arrives, which then starts
    at once; without the update the request waits for its own load."""
    import simpy

    from helium_lab.tokenizer import SyntheticTokenizer
    from sim.engine import SimEngine

    starts: dict[bool, float] = {}
    for prefetch in (False, True):
        env = simpy.Environment()
        done: list[CallResult] = []
        eng = SimEngine(env, EngineConfig.of(13, prewarm_pin="none",
                                          host_tier=TIER, host_kv_load="deferred",
                                          host_kv_prefetch_steps=2),
                        ConstantCost(step_s=0.1), SyntheticTokenizer(), done.append)
        system = tuple(range(64))
        eng.prewarm(system)
        env.run()
        eng.submit(_call(1, "X", system + tuple(range(500, 520))))  # matches the system
        env.run()
        eng.prewarm(tuple(range(1000, 1000 + 12 * BS)))  # evicts it to the host
        env.run()
        assert eng.kv.cached_prefix_tokens(system) == 0
        if prefetch:
            eng.update_step_graph({"X": 1, "Y": FAR_FUTURE})
        t_submit = env.now + 1.0
        env.run(until=t_submit)
        eng.submit(_call(2, "X", system + tuple(range(600, 620))))
        env.run()
        second = next(r for r in done if r.call_id == 2)
        starts[prefetch] = second.start_t - t_submit
        st = eng.stats()
        assert st["host_prefetched_blocks"] == (4 if prefetch else 0)
    assert starts[True] == 0.0
    assert starts[False] == pytest.approx(4 * 0.01)  # its own load: 4 blocks, 0.01 s each


def test_prefetch_during_a_decode_run_waits_for_the_step_boundary() -> None:
    """A step-graph update that arrives in the middle of a run of decode steps takes its
    blocks at the next step boundary (the fork handles received requests between
    iterations), never from under the run's reserved growth (regression: the run used to
    fail with 'Cannot get N free blocks')."""
    import simpy

    from helium_lab.tokenizer import SyntheticTokenizer
    from sim.engine import SimEngine

    env = simpy.Environment()
    done: list[CallResult] = []
    eng = SimEngine(env, EngineConfig.of(13, prewarm_pin="none", host_tier=TIER,
                                      host_kv_load="deferred", host_kv_prefetch_steps=2),
                    ConstantCost(step_s=0.1), SyntheticTokenizer(), done.append)
    system = tuple(range(160))  # 10 blocks
    eng.prewarm(system)
    env.run()
    eng.submit(_call(1, "X", system + tuple(range(500, 520))))  # records X's chain
    env.run()
    eng.prewarm(tuple(range(1000, 1000 + 12 * BS)))  # evicts it to the host
    env.run()
    long = LLMCall(call_id=2, query=2, op="D", worker=0, prompt_ids=tuple(range(3000, 3017)),
                   pieces=((17, False),), output_tokens=120, sampling=SamplingParams())
    eng.submit(long)  # grows from 2 to 9 blocks over a long decode run
    env.run(until=env.now + 1.55)  # mid-run, before it grows into its third block
    eng.update_step_graph({"X": 0})  # X's 10 host blocks: all the free blocks it has now
    env.run()
    assert [r.call_id for r in done][-1] == 2
    # handled at the boundary: the load takes all 10 free blocks, and the decode grows
    # into its third block only once they are loaded and evictable again
    assert eng.stats()["host_prefetched_blocks"] == 10
    eng.kv.check_integrity()
