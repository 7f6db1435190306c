"""Soft pins on stock vLLM: pinned free blocks parked beside the free queue, evicted last.

The simulator's soft pins (sim/block_pool.py, "Soft pinning"), on one engine's vLLM
`BlockPool`. A pin is on a block *hash* (vLLM's chained `BlockHash` of a full block,
KV-cache group 0) and counted: `pin` adds one, `unpin` drops one, and a hash is pinned
while its count is positive. A free block (ref_cnt 0) caching a pinned hash is *parked*:
taken off vLLM's free queue into an LRU side list, still with ref_cnt 0 and its hash, so

- the scheduler sees it as free capacity: `get_num_free_blocks` = free queue + parked;
  vLLM's admission check counts a prefix hit on a block with ref_cnt 0 as one block to
  take from that capacity (`_get_num_evictable_blocks`), parked or not: exact, as in the
  simulator (a phantom reference, as hard pins use, would hide that block from the check
  and over-admit by one block per pinned hit);
- it is evicted only when the free queue runs dry: `get_new_blocks(n)` with fewer than
  `n` blocks on the free queue first moves the oldest parked blocks to the queue's tail,
  so vLLM's own pop takes every ordinary free block, then those (its normal eviction: the
  hash leaves the map, the prefix is then a miss);
- a hit on it is a normal hit: `touch` moves it back onto the free queue, then vLLM's
  touch takes it off with a reference (metrics and all).

    free queue (head evicted first)          parked: pinned, free (head evicted first)
    [ unhashed | cached, LRU ... ]           [ p1 p2 p3 ... ]
       ^ get_new_blocks(n) pops here            | only when the free queue has < n:
                                                | the oldest are appended to the queue
    free_blocks: ref 1 -> 0 with a pinned hash  -> parked tail   (else vLLM's free)
    pin(h):   free blocks of h on the queue     -> parked tail
    unpin(h): last pin gone: parked blocks of h -> free queue tail (most recently used)
    touch:    a parked block is hit             -> queue, then vLLM's touch

Instance-level hooks only (nothing global is patched): `get_num_free_blocks`,
`get_new_blocks`, `touch`, `free_blocks` and `reset_prefix_cache` of one `BlockPool`
(vLLM calls them through the instance, so its own `get_usage` and `get_new_blocks` see the
wrapped count), and `allocate_slots` of its `KVCacheManager` for releases on admission.
The hashes of a prompt are the request's own (`Request.block_hashes`), or for a prefix
not submitted yet vLLM's `hash_block_tokens` chained with the engine's hash function,
checked against the request's when one is submitted (`prefix_hashes`). A prefix-cache
reset (all blocks free) first returns the parked blocks to the queue; the pin counts stay
(a pin is on hashes). Not covered: `BlockPool.evict_blocks`, which only KV connectors call
(none here), would leave a parked block without its hash (still free capacity, reused
when reclaimed). Install refuses several KV-cache groups and fine-grained (partial) hash
hits, where a block's hashes are not one full-block hash.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from typing import Any

GROUP = 0  # the one full-attention KV-cache group this supports


class SoftPins:
    """Soft pins of one engine's block pool. Build with `install`."""

    def __init__(self, kv_manager: Any, block_size: int,
                 key: Callable[[Any, int], bytes],
                 hash_tokens: Callable[[Any, tuple[int, ...]], bytes]) -> None:
        self.kv = kv_manager
        self.pool = kv_manager.block_pool
        self.queue = self.pool.free_block_queue
        self.block_size = block_size
        self._key = key
        self._hash_tokens = hash_tokens
        self.pins: dict[bytes, int] = {}  # hash key (with group id) -> pins held on it
        self.parked: OrderedDict[int, Any] = OrderedDict()  # block id -> free pinned block
        self.releases: dict[str, list[Sequence[bytes]]] = {}  # request id -> unpin on admit
        self.num_evicted = 0  # parked blocks handed to vLLM's eviction
        self._orig: dict[str, Callable[..., Any]] = {}

    # -- pins ----------------------------------------------------------------------------
    def prefix_hashes(self, tokens: Sequence[int]) -> list[bytes]:
        """vLLM's block hashes of the full blocks of `tokens` (no salt, no LoRA, no mm)."""
        out: list[bytes] = []
        parent: bytes | None = None
        bs = self.block_size
        for i in range(len(tokens) // bs):
            parent = self._hash_tokens(parent, tuple(tokens[i * bs:(i + 1) * bs]))
            out.append(parent)
        return out

    def pin(self, hashes: Iterable[bytes]) -> None:
        """One more pin on each hash; its free blocks on the queue are parked."""
        for h in hashes:
            k = self._key(h, GROUP)
            self.pins[k] = self.pins.get(k, 0) + 1
            for blk in self._blocks_under(k):
                if blk.ref_cnt == 0 and blk.block_id not in self.parked:
                    self.queue.remove(blk)
                    self.parked[blk.block_id] = blk

    def unpin(self, hashes: Iterable[bytes]) -> None:
        """One pin less on each hash; at none its parked blocks join the queue's tail."""
        for h in hashes:
            k = self._key(h, GROUP)
            left = self.pins.get(k, 0) - 1
            if left > 0:
                self.pins[k] = left
                continue
            self.pins.pop(k, None)
            for blk in self._blocks_under(k):
                if self.parked.pop(blk.block_id, None) is not None:
                    self.queue.append(blk)

    def release_on_admission(self, request_id: str, hashes: list[Sequence[bytes]]) -> None:
        """`unpin` each of `hashes` once vLLM first allocates request `request_id`."""
        if hashes:
            self.releases[request_id] = hashes

    def cached_prefix_blocks(self, hashes: Sequence[bytes]) -> int:
        """How many of `hashes`, from the first, are cached (up to the first miss)."""
        n = 0
        for h in hashes:
            if not self._blocks_under(self._key(h, GROUP)):
                break
            n += 1
        return n

    @property
    def num_pinned_blocks(self) -> int:
        """Cached blocks (free or in use) whose hash is pinned."""
        return sum(len(self._blocks_under(k)) for k in self.pins)

    def _blocks_under(self, key: bytes) -> list[Any]:
        entry = self.pool.cached_block_hash_to_block._cache.get(key)
        if entry is None:
            return []
        return list(entry.values()) if isinstance(entry, dict) else [entry]

    # -- hooks on the pool -----------------------------------------------------------------
    def _num_free(self) -> int:
        return int(self.queue.num_free_blocks) + len(self.parked)

    def _get_new_blocks(self, num_blocks: int) -> Any:
        short = num_blocks - self.queue.num_free_blocks
        if 0 < short <= len(self.parked):  # beyond that vLLM's own check raises
            out = [self.parked.popitem(last=False)[1] for _ in range(short)]
            self.queue.append_n(out)  # behind every ordinary free block: taken last
            self.num_evicted += short
        return self._orig["get_new_blocks"](num_blocks)

    def _touch(self, blocks: Sequence[Any]) -> None:
        for blk in blocks:
            if blk.ref_cnt == 0 and self.parked.pop(blk.block_id, None) is not None:
                self.queue.append(blk)  # vLLM's touch takes it off again
        self._orig["touch"](blocks)

    def _free_blocks(self, ordered: Iterable[Any]) -> None:
        rest: list[Any] = []
        for blk in ordered:
            if (blk.ref_cnt == 1 and not blk.is_null and blk.block_hash is not None
                    and blk.pool in (None, self.pool) and blk.block_hash in self.pins):
                blk.ref_cnt = 0
                self.parked[blk.block_id] = blk
            else:
                rest.append(blk)
        self._orig["free_blocks"](rest)

    def _reset_prefix_cache(self) -> bool:
        if self.parked and self.pool.num_gpu_blocks - self._num_free() == 1:
            self.queue.append_n(list(self.parked.values()))  # all free: the reset goes on
            self.parked.clear()
        return bool(self._orig["reset_prefix_cache"]())

    def _allocate_slots(self, *args: Any, **kwargs: Any) -> Any:
        out = self._orig["allocate_slots"](*args, **kwargs)
        if out is not None and self.releases:
            request = args[0] if args else kwargs["request"]
            for hashes in self.releases.pop(request.request_id, ()):
                self.unpin(hashes)
        return out

    # -- checks ----------------------------------------------------------------------------
    def check(self) -> None:
        """Assert the accounting: wrapped free count = free queue + parked; parked blocks
        are free, hashed, pinned and off the queue; every free block is in one of them."""
        pool = self.pool
        assert pool.get_num_free_blocks() == self.queue.num_free_blocks + len(self.parked)
        on_queue = {b.block_id for b in self.queue.get_all_free_blocks()}
        assert len(on_queue) == self.queue.num_free_blocks
        for bid, blk in self.parked.items():
            assert blk.ref_cnt == 0 and bid not in on_queue, f"parked block {bid}"
            assert blk.block_hash is not None and blk.block_hash in self.pins, bid
        free = {b.block_id for b in pool.blocks if b.ref_cnt == 0 and not b.is_null}
        assert free == on_queue | set(self.parked), "a free block on neither list"


def install(kv_manager: Any, block_size: int, vllm_version: str, hash_algo: str,
            tested: Sequence[str]) -> SoftPins | None:
    """Hook soft pins into one engine's block pool, or None where unsupported: an untested
    vLLM, missing hooks, several KV-cache groups, or fine-grained (partial) hash hits."""
    if vllm_version not in tested:
        return None
    pool = getattr(kv_manager, "block_pool", None)
    coordinator = getattr(kv_manager, "coordinator", None)
    needed = ("get_num_free_blocks", "get_new_blocks", "touch", "free_blocks",
              "reset_prefix_cache", "free_block_queue", "cached_block_hash_to_block")
    if (pool is None or coordinator is None or not hasattr(kv_manager, "allocate_slots")
            or not all(hasattr(pool, a) for a in needed)
            or not hasattr(pool.cached_block_hash_to_block, "_cache")
            or getattr(coordinator, "enable_partial_hash_hits", True)
            or getattr(kv_manager, "num_kv_cache_groups", 0) != 1
            or getattr(pool, "hash_block_size", None) != block_size):
        return None
    from vllm.utils.hashing import get_hash_fn_by_name
    from vllm.v1.core.kv_cache_utils import hash_block_tokens, make_block_hash_with_group_id

    fn = get_hash_fn_by_name(hash_algo)
    pins = SoftPins(kv_manager, block_size, make_block_hash_with_group_id,
                    lambda parent, tokens: hash_block_tokens(fn, parent, tokens))
    for name in ("get_new_blocks", "touch", "free_blocks", "reset_prefix_cache"):
        pins._orig[name] = getattr(pool, name)
        setattr(pool, name, getattr(pins, "_" + name))
    pool.get_num_free_blocks = pins._num_free
    pins._orig["allocate_slots"] = kv_manager.allocate_slots
    kv_manager.allocate_slots = pins._allocate_slots
    return pins
