"""Soft pins and retention on real vLLM (CPU build, tiny model; runtime/soft_pins.py),
each scenario also replayed through the simulator (pin_mode soft): cached tokens per call
must agree. KV: 128 blocks of 32 tokens (127 usable); every engine step is followed by
the accounting check (`SoftPins.check`: wrapped free count = free queue + parked)."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence

import pytest

from helium_lab.config import EngineSettings, ModelSettings, Orchestration
from helium_lab.dsl.ops import SamplingParams
from helium_lab.processor.calls import CallResult, LLMCall
from runtime import EngineDiedError, open_session
from runtime.engine import VllmEngine

BS = 32
KV_TOKENS = 4096  # 128 blocks


def _engine(mode: str = "soft") -> EngineSettings:
    return EngineSettings(block_size=BS, kv_capacity_tokens=KV_TOKENS, max_model_len=4000,
                          prewarm_pin=mode)  # type: ignore[arg-type]


class Real:
    """One real engine, driven call by call; checks the pin accounting after each step."""

    def __init__(self, eng: VllmEngine) -> None:
        assert eng.pins is not None, "soft pins not installed on this vLLM"
        self.eng = eng
        self.soft = eng.pins.soft
        self.results: dict[int, CallResult] = {}
        self.num_steps = 0

    def prewarm(self, ids: tuple[int, ...]) -> None:
        self.eng.prewarm(ids)
        self.drain()

    def run(self, calls: Sequence[LLMCall]) -> list[int]:
        for c in calls:
            self.eng.submit(c, 0.0)
        self.drain()
        return [self.results[c.call_id].cached_tokens for c in calls]

    def drain(self) -> None:
        while self.eng.has_work:
            for r in self.eng.step():
                self.results[r.call_id] = r
            self.num_steps += 1
            self.check()

    def check(self) -> None:
        self.soft.check()
        pool = self.soft.pool
        free = pool.get_num_free_blocks()
        assert free == pool.free_block_queue.num_free_blocks + len(self.soft.parked)
        assert self.eng.kv.usage == pytest.approx(1 - free / (pool.num_gpu_blocks - 1))

    def stat(self, key: str) -> float:
        return self.eng.stats()[key]


class Sim:
    """The same engine in the simulator, driven the same way."""

    def __init__(self, num_gpu_blocks: int, max_model_len: int) -> None:
        import simpy

        from helium_lab.tokenizer import SyntheticTokenizer
        from sim.config import EngineConfig
        from sim.cost_model import ConstantCost
        from sim.engine import SimEngine

        self.env = simpy.Environment()
        self.results: dict[int, CallResult] = {}
        cfg = EngineConfig.of(num_gpu_blocks, block_size=BS,
                           max_model_len=max_model_len, prewarm_pin="soft")
        self.eng = SimEngine(self.env, cfg, ConstantCost(step_s=0.01), SyntheticTokenizer(),
                             lambda r: self.results.__setitem__(r.call_id, r))

    def prewarm(self, ids: tuple[int, ...]) -> None:
        self.eng.prewarm(ids)
        self.env.run()

    def run(self, calls: Sequence[LLMCall]) -> list[int]:
        for c in calls:
            self.eng.submit(c)
        self.env.run()
        return [self.results[c.call_id].cached_tokens for c in calls]


class Calls:
    """Numbered calls of random prompts (token ids 16..1999)."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.next = 0

    def ids(self, n: int) -> tuple[int, ...]:
        return tuple(self.rng.randrange(16, 2000) for _ in range(n))

    def call(self, prompt: tuple[int, ...], *, retain: tuple[int, ...] = (),
             release: tuple[int, ...] = (), out: int = 1) -> LLMCall:
        self.next += 1
        return LLMCall(self.next, 0, f"c{self.next}", 0, prompt, ((len(prompt), True),), out,
                       SamplingParams(), retain=retain, release=release)

    def fill(self, d: Real | Sim, rounds: int = 12) -> None:
        """`rounds` unrelated 640-token prompts one after another (12: twice the cache);
        each needs 21 blocks, so it fits in the ordinary free blocks while <= 106 are
        pinned."""
        for _ in range(rounds):
            assert d.run([self.call(self.ids(640))]) == [0]


@pytest.fixture
def real() -> Iterator[Real]:
    with open_session(ModelSettings("tiny"), _engine(), 1, orchestration=Orchestration(),
                      seed=0) as s:
        eng = s.engines[0]
        assert eng.num_gpu_blocks == KV_TOKENS // BS
        yield Real(eng)


def _sim(real: Real) -> Sim:
    return Sim(real.eng.num_gpu_blocks, real.eng.max_model_len)


# -- scenarios: each returns the cached tokens of the calls it checks --------------------
def fill_scenario(d: Real | Sim) -> list[int]:
    """A prewarmed (soft-pinned) 10-block prefix and an unpinned 10-block prompt run after
    it; twice the cache of unrelated prompts; then both are asked again."""
    c = Calls(1)
    pinned, unpinned = c.ids(320), c.ids(320)
    d.prewarm(pinned)
    out = d.run([c.call(unpinned)])
    c.fill(d)
    return out + d.run([c.call((*pinned, 5))]) + d.run([c.call((*unpinned, 5))])


def pressure_scenario(d: Real | Sim) -> list[int]:
    """A prewarmed 40-block prefix, then a 120-block prompt (the pool has 127): 33 pinned
    blocks must go, the prefix's tail first (it was freed tail first)."""
    c = Calls(2)
    pinned = c.ids(1280)
    d.prewarm(pinned)
    return d.run([c.call(c.ids(3840))]) + d.run([c.call((*pinned, 5))])


def retain_scenario(d: Real | Sim) -> list[int]:
    """Two calls retain the same 10-block prefix (two pins per hash); each of two later
    calls releases one when admitted; cache fills in between. After the second release
    the prefix is an ordinary cached prefix and the next fill evicts it."""
    c = Calls(3)
    head = c.ids(320)
    out = d.run([c.call((*head, *c.ids(10)), retain=(320,))])
    out += d.run([c.call((*head, *c.ids(12)), retain=(320,))])
    c.fill(d)
    out += d.run([c.call((*head, *c.ids(20)), release=(320,))])
    c.fill(d)
    out += d.run([c.call((*head, *c.ids(20)), release=(320,))])
    c.fill(d)
    return out + d.run([c.call((*head, 5))])


def concurrent_scenario(d: Real | Sim) -> list[int]:
    """Many calls at once under memory pressure: pinned prefixes hit, retained and
    released while unrelated long prompts evict."""
    c = Calls(4)
    shared = c.ids(640)
    d.prewarm(shared)
    first = [c.call((*shared, *c.ids(300)), retain=(960,), out=8) for _ in range(3)]
    first += [c.call(c.ids(1500), out=8) for _ in range(2)]
    out = d.run(first)
    second = [c.call(c.ids(2990), out=8)]  # first in line: evicts the oldest parked blocks
    second += [c.call((*f.prompt_ids[:960], *c.ids(100)), release=(960,), out=8)
               for f in first[:3]]
    second.append(c.call((*shared, *c.ids(40)), out=8))
    return out + d.run(second)


# -- tests --------------------------------------------------------------------------------
def test_soft_pinned_prefix_survives_a_fill_that_evicts_an_unpinned_one(real: Real) -> None:
    out = fill_scenario(real)
    assert out == [0, 320, 0]  # the pinned prefix hits all its 10 blocks; the other none
    assert real.stat("evicted_pinned_blocks") == 0
    assert real.stat("num_prewarms") == 1
    assert out == fill_scenario(_sim(real))


def test_memory_pressure_evicts_soft_pins_instead_of_refusing(real: Real) -> None:
    out = pressure_scenario(real)
    assert out == [0, 7 * BS]  # admitted; only the prefix's first 7 blocks are left
    assert real.stat("evicted_pinned_blocks") == 120 - (127 - 40)
    assert out == pressure_scenario(_sim(real))


def test_hard_pins_refuse_what_soft_pins_admit() -> None:
    """The contrast: the same 120-block prompt never runs beside a 40-block hard pin."""
    with open_session(ModelSettings("tiny"), _engine("hard"), 1,
                      orchestration=Orchestration(), seed=0) as s:
        eng = s.engines[0]
        c = Calls(2)
        pinned = c.ids(1280)
        eng.prewarm(pinned)
        while eng.has_work:
            eng.step()
        assert eng.stats()["pinned_blocks"] == 40
        eng.submit(c.call(c.ids(3840)), 0.0)
        with pytest.raises(EngineDiedError, match="stalled"):
            while eng.has_work:
                eng.step()


def test_retained_prefix_stays_until_released(real: Real) -> None:
    out = retain_scenario(real)
    assert out == [0, 320, 320, 320, 0]
    assert not real.soft.pins and not real.soft.parked
    assert out == retain_scenario(_sim(real))


def test_accounting_holds_at_every_step_under_pressure(real: Real) -> None:
    out = concurrent_scenario(real)
    assert real.num_steps > 20
    # the prewarmed prefix hits throughout; the long prompt, first in line, took 27 parked
    # blocks: the retained tails (the oldest parked), so the releasing calls hit 640 only
    assert out == [640, 640, 640, 0, 0, 0, 640, 640, 640, 640]
    assert real.stat("evicted_pinned_blocks") == 27
    assert sorted(real.soft.pins.values()) == [1] * 20  # only the prewarm's pins are left
    pool = real.soft.pool
    assert pool.get_num_free_blocks() == pool.num_gpu_blocks - 1  # nothing leaked
    assert out == concurrent_scenario(_sim(real))


def test_prefix_hashes_are_vllms(real: Real) -> None:
    ids = Calls(5).ids(100)
    real.eng.add_raw(ids, 1)
    request = next(iter(real.eng.scheduler.requests.values()))
    assert real.soft.prefix_hashes(ids) == list(request.block_hashes) != []
    real.drain()
