"""Steps-to-execution eviction (sim/kv_holding.py, KVFlow's `--enable-holding`): blocks
of agents about to run are evicted last; priorities follow the fork's AgentManager."""

from __future__ import annotations

import pytest
import simpy

from experiments.compose import compose_once
from experiments.workflow_run import RunSettings
from helium_lab.config import EngineSettings
from helium_lab.dsl.ops import SamplingParams
from helium_lab.errors import ConfigError
from helium_lab.processor.calls import CallResult, LLMCall
from helium_lab.processor.step_graph import FAR_FUTURE
from helium_lab.tokenizer import SyntheticTokenizer
from sim.block_pool import Block, BlockPool
from sim.config import EngineConfig
from sim.cost_model import ConstantCost
from sim.engine import SimEngine
from sim.kv_holding import HeldFreeQueue, StepHolding

BS = 16


def _call(cid: int, op: str, prompt: tuple[int, ...]) -> LLMCall:
    return LLMCall(call_id=cid, query=cid, op=op, worker=0, prompt_ids=prompt,
                   pieces=((len(prompt), False),), output_tokens=1, sampling=SamplingParams())


def test_priorities_follow_the_forks_agent_manager() -> None:
    """hold_steps 4: a block's priority is the smallest over its agents of
    min(5, steps to execution); an agent the update does not name counts 5, a block
    without agents 6 (`get_agent_hold_priority`, `get_node_hold_priority`)."""
    h = StepHolding(4)
    blocks = [Block(i) for i in range(5)]
    h.update({"A": 0, "B": 2, "C": FAR_FUTURE})
    h.tag_hit(blocks[:1], "A")
    h.tag_hit(blocks[1:2], "B")
    h.tag_hit(blocks[2:3], "C")
    h.tag_hit(blocks[3:4], "Z")  # not in the update
    assert [h.priority(b) for b in blocks] == [0, 2, 5, 5, 6]
    h.tag_hit(blocks[2:3], "B")  # C's and B's: the nearer agent decides
    assert h.priority(blocks[2]) == 2


def test_new_blocks_inherit_the_agents_of_the_block_before_them() -> None:
    """A new radix node copies its parent's agents (`insert`): blocks cached after a
    block of agent A's carry A as well as their own request's agent."""
    h = StepHolding(4)
    blocks = [Block(i) for i in range(4)]
    h.tag_new(blocks, 0, 2, "A")
    h.tag_new(blocks, 2, 4, "B")
    assert [sorted(h.tags[b.block_id]) for b in blocks] == [["A"], ["A"], ["A", "B"],
                                                             ["A", "B"]]
    h.forget(blocks[3])
    assert blocks[3].block_id not in h.tags


def test_eviction_passes_take_far_agents_first_and_running_ones_last() -> None:
    """Passes s = 3, 2, 1 evict priority >= s, in queue order; the last pass ignores
    priorities (and is counted). An update re-sorts the free blocks."""
    h = StepHolding(4)
    blocks = [Block(i) for i in range(6)]
    h.update({"run": 0, "next": 1, "soon": 2, "far": FAR_FUTURE})
    for blk, agent in zip(blocks, ["run", "next", "soon", "far", "run", None], strict=True):
        if agent is not None:
            h.tag_hit([blk], agent)

    def order(n: int, distances: dict[str, int] | None = None) -> list[int]:
        q = h.queue = HeldFreeQueue(h, blocks)
        if distances is not None:
            h.update(distances)
        out = [b.block_id for b in q.take(n)]
        assert len(q) == len(blocks) - len(out) and sum(map(len, q.classes)) == len(q)
        return out

    assert order(6) == [3, 5, 2, 1, 0, 4]
    assert h.num_held_evictions == 2
    assert order(2) == [3, 5]
    assert order(0) == []
    assert order(6, {"run": FAR_FUTURE, "next": 0}) == [0, 2, 3, 4, 5, 1]


def test_the_free_queue_keeps_its_order_and_classes_through_every_operation() -> None:
    """A pool under holding: frees (tails appended, unhashed blocks prepended), hits,
    pins and updates keep the class sub-queues a partition of the free queue, each in
    the queue's order (`check_integrity`)."""
    pool = BlockPool(12)
    h = StepHolding(3)
    pool.set_holding(h)
    a = pool.get_new_blocks(4)
    hashes = [bytes([i]) * 8 for i in range(4)]
    pool.cache_full_blocks(a, hashes, 0, 3)
    h.tag_new(a, 0, 3, "A")
    pool.free_blocks(reversed(a))
    pool.check_integrity()
    assert [b.block_id for b in pool.free_queue][:1] == [a[3].block_id]  # unhashed first
    h.update({"A": 0})
    pool.check_integrity()
    pool.touch(a[:2])
    pool.pin(hashes[2:3])
    pool.check_integrity()
    pool.free_blocks(reversed(a[:2]))
    pool.unpin(hashes[2:3])
    h.update({"A": 2})
    pool.check_integrity()
    taken = pool.get_new_blocks(pool.get_num_free_blocks())
    assert [b.block_id for b in taken][-3:] == [a[1].block_id, a[0].block_id, a[2].block_id]
    pool.check_integrity()


def _engine(holding: bool) -> tuple[SimEngine, simpy.Environment, list[CallResult]]:
    env = simpy.Environment()
    done: list[CallResult] = []
    eviction = "steps_to_execution" if holding else "lru"
    eng = SimEngine(env, EngineConfig.of(13, prewarm_pin="none", kv_eviction=eviction),
                    ConstantCost(step_s=0.1), SyntheticTokenizer(), done.append)
    return eng, env, done


@pytest.mark.parametrize("holding", [False, True])
def test_the_prefix_of_the_next_agent_survives_a_burst(holding: bool) -> None:
    """12 usable blocks of 16 tokens. X's call, then Y's (each 4 prefix blocks plus 20
    tokens: 5 cached blocks and a partial one), then an untagged 80-token prefill that
    takes 5 blocks. Free queue head first: Y's partial, X's partial, X's blocks tail
    first, then Y's. LRU takes the two partials and X's blocks 4..2: X keeps two blocks
    (32 tokens hit). With X one step from running and Y done, holding's first pass
    takes the partials and Y's blocks instead: X's next call hits its whole prefix."""
    eng, env, done = _engine(holding)
    px, py = tuple(range(64)), tuple(range(5000, 5064))
    eng.submit(_call(1, "X", px + tuple(range(100, 120))))
    env.run()
    eng.submit(_call(2, "Y", py + tuple(range(200, 220))))
    env.run()
    eng.update_step_graph({"X": 1, "Y": FAR_FUTURE})
    eng.prewarm(tuple(range(9000, 9080)))
    env.run()
    eng.submit(_call(3, "X", px + tuple(range(300, 320))))
    env.run()
    third = next(r for r in done if r.call_id == 3)
    assert third.cached_tokens == (64 if holding else 32)
    eng.kv.check_integrity()
    st = eng.stats()
    assert ("evicted_held_blocks" in st) == holding
    if holding:
        assert st["evicted_held_blocks"] == 0


def test_without_a_step_graph_holding_is_lru() -> None:
    """No update: every tagged block counts hold_steps + 1, at or above the first pass's
    bar, so all free blocks share the first class and go in the free queue's order."""
    eng, env, _ = _engine(True)
    eng.submit(_call(1, "X", tuple(range(64)) + tuple(range(100, 120))))
    env.run()
    holding, pool = eng.kv.pool.holding, eng.kv.pool
    assert holding is not None and holding.queue is not None
    assert holding.distances == {}
    assert [holding.priority(b) for b in pool.blocks[1:7]] == [5, 5, 5, 5, 5, 6]
    lru = [b.block_id for b in pool.free_queue]
    assert [b.block_id for b in holding.queue.take(len(lru))] == lru
    assert holding.num_held_evictions == 0


def test_bad_settings_are_named() -> None:
    with pytest.raises(ConfigError, match=r"engine\.kv_eviction"):
        EngineSettings(kv_eviction="belady")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"engine\.kv_eviction=steps_to_execution.*prefix"):
        EngineSettings(kv_eviction="steps_to_execution", enable_prefix_caching=False)
    with pytest.raises(ConfigError, match=r"engine\.kv_hold_steps"):
        EngineSettings(kv_hold_steps=0)
    cfg = compose_once(["+experiment=debate", "system=langgraph",
                        "engine.kv_eviction=steps_to_execution"])
    with pytest.raises(ConfigError, match=r"engine\.kv_eviction.*step_graph"):
        RunSettings.from_cfg(cfg)
    cfg = compose_once(["+experiment=debate", "system=kvflow",
                        "engine.kv_eviction=steps_to_execution"])
    assert RunSettings.from_cfg(cfg).engine.kv_eviction == "steps_to_execution"
    assert EngineSettings(kv_eviction="steps_to_execution").simulated_only() == ["kv_eviction"]
