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

from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence

from sim.block_pool import Block, FreeBlockQueue

HOLD_STEPS = 4  # the fork's `evict_pri_level` default (server_args.py)


class StepHolding:
    """Agent tags per cached block, their hold priorities, and the pool's free queue kept
    split by priority class (`HeldFreeQueue`), which the latest update reorders."""

    def __init__(self, hold_steps: int = HOLD_STEPS) -> None:
        if hold_steps < 1:
            raise ValueError(f"hold_steps must be >= 1, got {hold_steps}")
        self.hold_steps = hold_steps
        # block id -> its agents (cached blocks only); equal sets are one object, so a
        # priority is worked out once per distinct set and update (`_memo`)
        self.tags: dict[int, frozenset[str]] = {}
        self._sets: dict[frozenset[str], frozenset[str]] = {}
        self._memo: dict[frozenset[str], int] = {}
        self.distances: Mapping[str, int] = {}
        self.num_held_evictions = 0  # blocks evicted only by the final, ignoring pass
        self.queue: HeldFreeQueue | None = None  # set by `BlockPool.set_holding`

    def update(self, distances: Mapping[str, int]) -> None:
        """The latest step graph (agent -> steps to execution), as an `/update` sets it.
        Free blocks are re-sorted only if some agent's priority changed."""
        cap = self.hold_steps + 1
        before = {a: min(cap, d) for a, d in self.distances.items()}
        self.distances = dict(distances)
        if {a: min(cap, d) for a, d in self.distances.items()} == before:
            return
        self._memo.clear()
        if self.queue is not None:
            self.queue.reclassify()

    def _add(self, block_id: int, agents: Iterable[str]) -> None:
        old = self.tags.get(block_id, frozenset())
        new = old.union(agents)
        if new != old:
            self.tags[block_id] = self._sets.setdefault(new, new)

    def tag_hit(self, blocks: Iterable[Block], agent: str) -> None:
        """`agent`'s request reuses these cached blocks (its prefix hit; held by it)."""
        one = (agent,)
        for blk in blocks:
            self._add(blk.block_id, one)

    def tag_new(self, blocks: Sequence[Block], start: int, end: int, agent: str) -> None:
        """blocks[start:end] of `agent`'s request were just cached: each gets the agents
        of the block before it (a new radix node copies its parent's) and `agent`."""
        inherited = self.tags.get(blocks[start - 1].block_id, frozenset()) if start else \
            frozenset()
        agents = inherited | {agent}
        for blk in blocks[start:end]:
            self._add(blk.block_id, agents)

    def forget(self, block: Block) -> None:
        """`block` was evicted or reused: its node is gone, and its tags with it."""
        self.tags.pop(block.block_id, None)

    def priority(self, block: Block) -> int:
        agents = self.tags.get(block.block_id)
        if not agents:
            return self.hold_steps + 2
        p = self._memo.get(agents)
        if p is None:
            cap = self.hold_steps + 1
            get = self.distances.get
            p = self._memo[agents] = min(min(cap, get(a, cap)) for a in agents)
        return p

    def klass(self, block: Block) -> int:
        """The first pass that may evict `block`'s priority: min(priority, hold_steps - 1)
        (passes run from hold_steps - 1 down to 1, then 0 ignores priorities)."""
        return min(self.priority(block), self.hold_steps - 1)


class HeldFreeQueue(FreeBlockQueue):
    """The pool's free queue (same order, same operations), also kept as one sub-queue
    per priority class in the same relative order, so that the fork's passes take their
    blocks without scanning the queue: pass s takes the blocks of priority >= s that
    earlier passes left, which, once the classes above are exhausted, is class s in queue
    order. A free block's tags do not change (only blocks a request holds get tagged),
    so its class, worked out again wherever it is needed, changes only on an update,
    which re-sorts the whole queue."""

    def __init__(self, holding: StepHolding, blocks: Iterable[Block] = ()) -> None:
        super().__init__(blocks)
        self.holding = holding
        self.classes: list[OrderedDict[Block, None]] = []
        self.reclassify()

    def reclassify(self) -> None:
        self.classes = [OrderedDict() for _ in range(self.holding.hold_steps)]
        klass = self.holding.klass
        for b in self._q:
            self.classes[klass(b)][b] = None

    def popleft(self) -> Block:
        b = super().popleft()
        del self.classes[self.holding.klass(b)][b]
        return b

    def remove(self, block: Block) -> None:
        super().remove(block)
        del self.classes[self.holding.klass(block)][block]

    def append_n(self, blocks: list[Block]) -> None:
        super().append_n(blocks)
        klass = self.holding.klass
        for b in blocks:
            self.classes[klass(b)][b] = None

    def prepend_n(self, blocks: list[Block]) -> None:
        super().prepend_n(blocks)
        klass = self.holding.klass
        for b in reversed(blocks):
            sub = self.classes[klass(b)]
            sub[b] = None
            sub.move_to_end(b, last=False)

    def take(self, n: int) -> list[Block]:
        """Remove and return the `n` blocks the fork's passes free first (head first):
        classes hold_steps - 1 .. 1, then class 0, counted as held evictions. Blocks
        caching nothing carry no agents: they sit at the head of the top class, so free
        memory goes before any eviction, as in the fork."""
        out: list[Block] = []
        for k in range(len(self.classes) - 1, -1, -1):
            sub = self.classes[k]
            while sub and len(out) < n:
                b = sub.popitem(last=False)[0]
                del self._q[b]
                out.append(b)
                if k == 0 and len(self.classes) > 1:
                    self.holding.num_held_evictions += 1
            if len(out) >= n:
                break
        return out
