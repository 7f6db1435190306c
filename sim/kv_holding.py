"""Steps-to-execution eviction ("holding"): KVFlow's workflow-aware GPU KV eviction.

The mechanism of KVFlow's fork of SGLang (PanZaifeng/KVFlow, `--enable-holding`,
`mem_cache/hiradix_cache.py` `evict` / `_evict_helper`, `managers/agent_manager.py`
`AgentManager`), selected by `engine.kv_eviction: steps_to_execution`:

- Each cached block carries the agents (LLM ops) whose requests passed through it. The
  fork tags the radix node where a request's tokens end and lets a new node inherit its
  parent's tags (`insert`, `_split_node`); it evicts leaves only, so a node is kept while
  any descendant is kept. Tagging every block of a request's path with its agent (and a
  new block with its parent's agents) gives each block the protection the leaf rule
  gives it while those descendants are cached. (After a descendant leaves, the fork's
  node falls back to its own tags; ours keeps the descendant's: a stronger hold.)
- A block's hold priority, from the latest step-graph update: the smallest, over its
  agents, of min(`hold_steps` + 1, the agent's steps to execution); an agent the update
  does not name counts `hold_steps` + 1, a block without agents `hold_steps` + 2
  (`get_agent_hold_priority`, `get_agents_hold_priority`).
- To free blocks, the fork makes passes for s = `hold_steps` - 1 down to 1, each evicting
  blocks of priority >= s, then one pass that ignores priorities. Within a pass we keep
  the free queue's LRU order (upstream SGLang; the fork pops leaves in traversal order,
  see docs/systems.md).

`hold_steps` is the fork's `evict_pri_level` (server_args.py, default 4). Off by default:
helium_demo's KVFlow runner does not pass `--enable-holding` (default False).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sim.block_pool import Block

HOLD_STEPS = 4  # the fork's `evict_pri_level` default (server_args.py)


class StepHolding:
    """Agent tags per cached block and their hold priorities; the eviction order.

    Priorities are cached per block until the next update or a change of the block's
    tags (tags change only while a request holds the block, never while it is free)."""

    def __init__(self, hold_steps: int = HOLD_STEPS) -> None:
        if hold_steps < 1:
            raise ValueError(f"hold_steps must be >= 1, got {hold_steps}")
        self.hold_steps = hold_steps
        self.tags: dict[int, set[str]] = {}  # block id -> agents (cached blocks only)
        self.distances: Mapping[str, int] = {}
        self.num_held_evictions = 0  # blocks evicted only by the final, ignoring pass
        self._priority: dict[int, int] = {}

    def update(self, distances: Mapping[str, int]) -> None:
        """The latest step graph (agent -> steps to execution), as an `/update` sets it."""
        self.distances = dict(distances)
        self._priority.clear()

    def tag_hit(self, blocks: Iterable[Block], agent: str) -> None:
        """`agent`'s request reuses these cached blocks (its prefix hit)."""
        tags, cached = self.tags, self._priority
        for blk in blocks:
            tags.setdefault(blk.block_id, set()).add(agent)
            cached.pop(blk.block_id, None)

    def tag_new(self, blocks: Sequence[Block], start: int, end: int, agent: str) -> None:
        """blocks[start:end] of `agent`'s request were just cached: each gets the agents
        of the block before it (a new radix node copies its parent's) and `agent`."""
        tags, cached = self.tags, self._priority
        inherited = tags.get(blocks[start - 1].block_id, ()) if start > 0 else ()
        for blk in blocks[start:end]:
            own = tags.setdefault(blk.block_id, set())
            own.update(inherited)
            own.add(agent)
            cached.pop(blk.block_id, None)

    def forget(self, block: Block) -> None:
        """`block` was evicted or reused: its node is gone, and its tags with it."""
        self.tags.pop(block.block_id, None)
        self._priority.pop(block.block_id, None)

    def priority(self, block: Block) -> int:
        bid = block.block_id
        p = self._priority.get(bid)
        if p is None:
            agents = self.tags.get(bid)
            if not agents:
                p = self.hold_steps + 2
            else:
                cap = self.hold_steps + 1
                get = self.distances.get
                p = min(min(cap, get(a, cap)) for a in agents)
            self._priority[bid] = p
        return p

    def eviction_order(self, queue: Iterable[Block], n: int) -> list[Block]:
        """The `n` free blocks to take, in order, from `queue` (head first): the fork's
        holding passes, then the ignoring pass. Blocks caching nothing carry no agents, so
        the first pass takes them first (the queue holds them at its head): free memory
        goes before any eviction, as in the fork.

        One scan: pass s (s = hold_steps - 1 .. 1) takes blocks of priority >= s that
        earlier passes left, so it takes class s = min(priority, hold_steps - 1) in queue
        order once the classes above are exhausted; the scan stops as soon as the first
        pass alone has `n` blocks."""
        if n <= 0:
            return []
        top = self.hold_steps - 1
        classes: list[list[Block]] = [[] for _ in range(top + 1)]
        first = classes[top]
        priority = self.priority
        for b in queue:
            k = priority(b)
            if k >= top:
                first.append(b)
                if len(first) == n:
                    return first
            else:
                classes[k].append(b)
        chosen = first
        for k in range(top - 1, -1, -1):
            more = classes[k][:n - len(chosen)]
            if k == 0:
                self.num_held_evictions += len(more)
            chosen += more
            if len(chosen) >= n:
                break
        return chosen
