"""Per-request KV block bookkeeping over a `BlockPool`: vLLM v1's KVCacheManager.

Contract (one full-attention group, `hash_block_size == block_size`, as in vLLM for the
models simulated here):

- `find_cached_prefix(req)` is read-only: the longest run of cached full blocks from the
  start of `req`'s tokens, stopping at the first miss, capped so that at least one token
  is computed (vLLM: `max_cache_hit_length = request.num_tokens - 1`). A fully cached
  prompt of L tokens therefore hits `(L - 1) // B * B` tokens.
- `allocate_slots(req, n, hit)` either changes nothing and returns False (not enough free
  blocks, counting hit blocks that must leave the free queue), or takes references on
  the hit blocks, allocates blocks for `num_computed + hit + n` tokens (evicting cached
  blocks from the queue head) and caches every block that became full, up to the tokens
  already sampled (`req.num_tokens`). It does not advance `req.num_computed_tokens`.
- `free(req)` releases the request's blocks in reverse order (tail evicted first). Blocks
  stay cached until evicted.
- With prefix caching off nothing is ever hashed or hit.
- Under steps-to-execution eviction (`pool.holding`, sim/kv_holding.py) a request's
  agent (its call's op) tags the blocks it hits and the blocks it caches.
- With a host tier (`attach_host`, sim/host_tier.py) the lookup continues past the GPU's
  cached blocks into the host's: `CacheHit.host_hashes` are loaded into fresh blocks by
  `allocate_slots` (the same blocks a recompute would take), then cached as computed. In
  the `deferred` load mode (KVFlow, sim/host_loads.py) the scheduler instead starts a
  background load of them (`loads`) and admits the request once they are GPU blocks.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from itertools import takewhile
from operator import attrgetter, is_not
from typing import cast

import numpy as np

from sim.block_hash import BlockHasher
from sim.block_pool import Block, BlockPool
from sim.host_loads import BackgroundLoads
from sim.host_tier import LOAD_BACK_THRESHOLD_TOKENS, HostTier
from sim.request import SimRequest

_is_block = partial(is_not, None)  # a C callable: x is not None
_REF_CNT = attrgetter("ref_cnt")
_KV_SLOTS = attrgetter("kv_slots")
_COMPUTED = attrgetter("num_computed_tokens")


def cdiv(a: int, b: int) -> int:
    return -(-a // b)


@dataclass(frozen=True)
class CacheHit:
    """A prefix-cache hit: the GPU's cached blocks, then the host's (by hash, to be
    loaded), and the tokens all of them cover."""

    blocks: tuple[Block, ...] = ()
    num_tokens: int = 0
    host_hashes: tuple[bytes, ...] = ()


NO_HIT = CacheHit()


class KVCacheManager:
    """Allocates, caches and frees the KV blocks of requests on one engine."""

    def __init__(self, num_gpu_blocks: int, block_size: int, enable_caching: bool = True) -> None:
        self.block_size = block_size
        self.enable_caching = enable_caching
        self.pool = BlockPool(num_gpu_blocks, enable_caching)
        self.hasher = BlockHasher(block_size)
        self._blocks: dict[int, list[Block]] = {}
        self._num_cached: dict[int, int] = {}
        self.num_queries = 0
        self.num_hits = 0
        self.num_host_hits = 0
        self.host: HostTier | None = None
        self.loads: BackgroundLoads | None = None  # the deferred load mode's loads
        self.hard_pins: dict[tuple[int, ...], list[Block]] = {}  # prefix -> its blocks
        self.hard_pin_limit = 0  # most blocks all hard pins may hold (0: none)
        self._pin_on_free: dict[int, tuple[tuple[int, ...], int]] = {}

    def attach_host(self, host: HostTier, *, deferred: bool = False) -> None:
        """Add a host KV tier (needs prefix caching): the pool reports to it what it caches
        and evicts. `deferred`: host hits load beside the forward passes (`loads`)."""
        if not self.enable_caching:
            raise ValueError("a host KV tier needs prefix caching")
        self.host = host
        self.pool.on_cached = host.on_cached
        self.pool.on_evicted = host.on_gpu_evicted
        if deferred:
            self.loads = BackgroundLoads(self.pool, host)

    # -- lookups -------------------------------------------------------------------------

    @property
    def num_usable_blocks(self) -> int:
        return self.pool.num_usable_blocks

    def blocks_needed(self, num_tokens: int) -> int:
        return cdiv(num_tokens, self.block_size)

    def find_cached_prefix(self, req: SimRequest) -> CacheHit:
        """Longest cached prefix of `req` (at most num_tokens - 1 tokens). Read-only."""
        if not self.enable_caching:
            return NO_HIT
        hashes = self.hashes_of(req)[:(req.num_tokens - 1) // self.block_size]
        hit = self._lookup(hashes)
        if self.host is not None and len(hit) < len(hashes):
            n = self.host.match(hashes, len(hit))
            if n and n * self.block_size >= LOAD_BACK_THRESHOLD_TOKENS:
                return CacheHit(tuple(hit), (len(hit) + n) * self.block_size,
                                tuple(hashes[len(hit):len(hit) + n]))
        return CacheHit(tuple(hit), len(hit) * self.block_size) if hit else NO_HIT

    def cached_prefix_tokens(self, tokens: Sequence[int]) -> int:
        """Tokens of `tokens` covered by cached full blocks (no recompute cap). Read-only."""
        if not self.enable_caching:
            return 0
        return len(self._lookup(self.hasher.hashes(tokens))) * self.block_size

    def matched_chain(self, req: SimRequest) -> tuple[bytes, ...]:
        """Hashes of `req`'s prefix found on either tier now (its last one identifies it):
        the chain KVFlow remembers for the request's agent. Read-only."""
        hit = self.find_cached_prefix(req)
        return tuple(b.block_hash for b in hit.blocks if b.block_hash is not None) + \
            hit.host_hashes

    def prefetch(self, chain: Sequence[bytes], now: float) -> bool:
        """Start loading the host-only blocks that continue `chain`'s GPU-cached head
        (none loading); False if they don't fit (KVFlow then stops prefetching)."""
        assert self.loads is not None and self.host is not None
        gpu = len(self._lookup(chain))
        n = self.host.match(chain, gpu)
        todo = [h for h in chain[gpu:gpu + n] if h not in self.loads.loading]
        if not todo:
            return True
        return self.loads.start(now, todo, prefetch=True)

    def record_lookup(self, req: SimRequest, hit: CacheHit) -> None:
        """Count a lookup in the hit-rate stats (vLLM counts at admission only)."""
        if self.enable_caching:
            self.num_queries += req.num_tokens
            if hit.host_hashes:
                host = len(hit.host_hashes) * self.block_size
                self.num_hits += hit.num_tokens - host
                self.num_host_hits += host
            else:
                self.num_hits += hit.num_tokens

    def num_blocks_of(self, req: SimRequest) -> int:
        return len(self._blocks.get(req.request_id, ()))

    # -- mutation ------------------------------------------------------------------------

    def allocate_slots(self, req: SimRequest, num_new_tokens: int, hit: CacheHit = NO_HIT,
                       *, full_sequence_must_fit: bool = False) -> bool:
        """Make room for `num_new_tokens` more computed tokens; False (no change) if full.

        `full_sequence_must_fit` is vLLM's admission gate (`scheduler_reserve_full_isl`):
        a waiting request is admitted only if all its current tokens would fit.
        """
        upto = req.num_computed_tokens + num_new_tokens
        if not hit.num_tokens and not full_sequence_must_fit:
            if upto <= req.kv_slots:
                # fast path (most decodes): the request's blocks already have the slots
                if min(upto, req.num_tokens) >= req.kv_cache_next:
                    self._cache_blocks(req, min(upto, req.num_tokens))
                return True
            return self._grow(req, upto)
        req_blocks = self._blocks.get(req.request_id, [])
        if not self.fits(req, num_new_tokens, hit, full_sequence_must_fit=full_sequence_must_fit):
            return False
        num_slots = req.num_computed_tokens + hit.num_tokens + num_new_tokens
        self._blocks[req.request_id] = req_blocks
        if hit.blocks:
            self.pool.touch(hit.blocks)
            req_blocks.extend(hit.blocks)
            self._num_cached[req.request_id] = len(req_blocks)
            if self.pool.holding is not None and req.call is not None:
                self.pool.holding.tag_hit(hit.blocks, req.call.op)
            if self.host is not None:
                self.host.on_gpu_hit([b.block_hash for b in hit.blocks
                                      if b.block_hash is not None])
        if hit.host_hashes:
            assert self.host is not None
            self.host.begin_load(hit.host_hashes)  # locked on the host, copied this step
        grown = self._grow(req, num_slots)  # the hit is held; the rest fits (checked above)
        assert grown
        return True

    def _grow(self, req: SimRequest, num_slots: int) -> bool:
        """`allocate_slots` without a hit or the admission gate, for `num_slots` beyond the
        request's slots (running requests: decodes growing into a block, later prefill
        chunks): `fits` then reduces to the missing blocks being free."""
        req_blocks = self._blocks.get(req.request_id)
        missing = -(-num_slots // self.block_size) - (len(req_blocks) if req_blocks else 0)
        if missing > self.pool.get_num_free_blocks():
            return False
        if req_blocks is None:
            req_blocks = self._blocks[req.request_id] = []
        if missing > 0:
            req_blocks.extend(self.pool.get_new_blocks(missing))
        if self.enable_caching:
            self._cache_blocks(req, min(num_slots, req.num_tokens))
        self._sync(req)
        return True

    def fits(self, req: SimRequest, num_new_tokens: int, hit: CacheHit = NO_HIT, *,
             full_sequence_must_fit: bool = False) -> bool:
        """Whether `allocate_slots` with these arguments would succeed. Read-only."""
        held = len(self._blocks.get(req.request_id, ())) + len(hit.blocks)
        from_queue = list(map(_REF_CNT, hit.blocks)).count(0)  # hit blocks now free
        free = self.pool.get_num_free_blocks()
        if full_sequence_must_fit and (
                max(self.blocks_needed(req.num_tokens) - held, 0) + from_queue > free):
            return False
        num_slots = req.num_computed_tokens + hit.num_tokens + num_new_tokens
        return max(self.blocks_needed(num_slots) - held, 0) + from_queue <= free

    def hashes_of(self, req: SimRequest) -> list[bytes]:
        """Hashes of all full blocks of `req`'s prompt and planned output (computed once:
        the output ids are known in advance)."""
        if req.block_hashes is None:
            n_prompt = len(req.prompt_ids)
            ids = np.empty(n_prompt + len(req.output_ids), dtype=np.int64)
            key = req.call.prompt_key if req.call is not None else b""
            ids[:n_prompt] = (np.frombuffer(key, dtype=np.int64) if key else
                              np.fromiter(req.prompt_ids, dtype=np.int64, count=n_prompt))
            ids[n_prompt:] = req.output_ids
            req.block_hashes = self.hasher.hashes(ids)
        return req.block_hashes

    def max_decode_steps(self, running: Sequence[SimRequest], cap: int) -> int:
        """The most decode steps (<= `cap`) of every request in `running`, each a token
        from being computed, whose new blocks the free blocks cover."""
        bs = self.block_size
        free = self.pool.get_num_free_blocks()
        # each request grows into at most (cap - 1) // bs + 1 new blocks in cap steps (its
        # first growth is at step >= 1): when the free blocks cover that bound for all of
        # them, cap is the answer without counting request by request
        if len(running) * ((cap - 1) // bs + 1) <= free:
            return cap
        # the first step at which each request grows into a new block, then one every bs
        # (`kv_slots` mirrors the request's blocks: len(blocks) * bs; read in C)
        n = len(running)
        first = (np.fromiter(map(_KV_SLOTS, running), dtype=np.int64, count=n)
                 - np.fromiter(map(_COMPUTED, running), dtype=np.int64, count=n) + 1)

        def needed(steps: int) -> int:
            past = steps - first
            return int((past[past >= 0] // bs + 1).sum())

        if needed(cap) <= free:
            return cap
        lo, hi = 0, cap  # needed(lo) <= free < needed(hi)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if needed(mid) <= free else (lo, mid)
        return lo

    def append_decode_slots(self, running: Sequence[SimRequest], steps: int) -> None:
        """Exactly what `steps` rounds of `allocate_slots(req, 1)` over `running` (in order,
        one round per decode step) would allocate, given `max_decode_steps` allows them:
        new blocks are taken in (step, request) order, so the same cached blocks are
        evicted. Call `cache_upto` once the requests have advanced."""
        bs = self.block_size
        grows: list[tuple[int, int]] = []  # (step taking the block, index in running)
        for i, r in enumerate(running):
            held = len(self._blocks[r.request_id])
            # step s (1-based) computes token index num_computed + s - 1
            for need in range(held + 1, cdiv(r.num_computed_tokens + steps, bs) + 1):
                grows.append(((need - 1) * bs - r.num_computed_tokens + 1, i))
        grows.sort()
        for (_, i), blk in zip(grows, self.pool.get_new_blocks(len(grows)), strict=True):
            self._blocks[running[i].request_id].append(blk)
        # only these requests' blocks changed: `_sync` of the others would rewrite the
        # values they hold (`kv_cache_next` changes only when `cache_upto` caches)
        for i in sorted({i for _, i in grows}):
            self._sync(running[i])

    def cache_upto(self, req: SimRequest, num_tokens: int) -> None:
        """Cache `req`'s blocks filled by its first `num_tokens` (<= num_tokens sampled)."""
        if self.enable_caching:
            self._cache_blocks(req, num_tokens)

    def free(self, req: SimRequest) -> None:
        """Release all of `req`'s blocks, tail first (finish or preemption)."""
        blocks = self._blocks.pop(req.request_id, [])
        self._num_cached.pop(req.request_id, None)
        self._sync(req)
        wanted = self._pin_on_free.pop(req.request_id, None)
        if wanted is not None:
            self._hard_pin(req, blocks, *wanted)
        self.pool.free_blocks(reversed(blocks))

    def hard_pin_on_free(self, req: SimRequest, prefix: tuple[int, ...]) -> None:
        """When `req` (a prewarm of `prefix`) releases its blocks, keep one extra reference
        on the full blocks of `prefix` (runtime/pins.py's hook): never evicted, always hit.
        Skipped if the request was preempted before its prefill completed, if the prefix
        is pinned already, or if the pins would exceed `hard_pin_limit` blocks."""
        self._pin_on_free[req.request_id] = (prefix, len(prefix) // self.block_size)

    def _hard_pin(self, req: SimRequest, blocks: list[Block], prefix: tuple[int, ...],
                  n_full: int) -> None:
        if prefix in self.hard_pins or req.num_computed_tokens < n_full * self.block_size:
            return
        pinned = blocks[:n_full]
        if len(pinned) < n_full or any(b.block_hash is None for b in pinned):
            return
        if sum(map(len, self.hard_pins.values())) + n_full > self.hard_pin_limit:
            return
        self.pool.touch(pinned)
        self.hard_pins[prefix] = pinned

    def pin_prefix(self, tokens: Sequence[int]) -> None:
        """Soft-pin the full blocks of `tokens` (see `BlockPool.pin`)."""
        self.pool.pin(self.hasher.hashes(tokens))

    def pin_request_prefix(self, req: SimRequest, num_tokens: int) -> None:
        """Soft-pin the full blocks of `req`'s first `num_tokens` (<= its tokens so far),
        using the request's own hash chain (computed once, reused by its lookup)."""
        self.pool.pin(self.hashes_of(req)[:num_tokens // self.block_size])

    def unpin_request_prefix(self, req: SimRequest, num_tokens: int) -> None:
        """Release one pin taken by `pin_request_prefix` on the same tokens."""
        self.pool.unpin(self.hashes_of(req)[:num_tokens // self.block_size])

    def check_integrity(self) -> None:
        """Assert pool invariants and that each ref count equals its number of holders."""
        self.pool.check_integrity()
        loading = self.loads.held_blocks() if self.loads is not None else []
        holders = Counter(b.block_id for blocks in [*self._blocks.values(),
                                                    *self.hard_pins.values(), *loading]
                          for b in blocks)
        for blk in self.pool.blocks[1:]:
            assert blk.ref_cnt == holders[blk.block_id], (
                f"{blk}: held by {holders[blk.block_id]} requests")

    # -- internals -----------------------------------------------------------------------

    def _lookup(self, hashes: Sequence[bytes]) -> list[Block]:
        """The cached blocks of `hashes` up to the first miss (`BlockPool.get_cached_block`
        per hash, in C: map, then take while not None)."""
        get: Callable[[bytes], Block | None] = self.pool.cached.get
        return cast(list[Block], list(takewhile(_is_block, map(get, hashes))))

    def _cache_blocks(self, req: SimRequest, num_tokens: int) -> None:
        start = self._num_cached.get(req.request_id, 0)
        end = num_tokens // self.block_size
        if start >= end:
            return
        hashes = req.block_hashes if req.block_hashes is not None else self.hashes_of(req)
        blocks = self._blocks[req.request_id]
        self.pool.cache_full_blocks(blocks, hashes, start, end)
        if self.pool.holding is not None and req.call is not None:
            self.pool.holding.tag_new(blocks, start, end, req.call.op)
        self._num_cached[req.request_id] = end
        req.kv_cache_next = (end + 1) * self.block_size

    def _sync(self, req: SimRequest) -> None:
        """Mirror the request's block bookkeeping onto it (`kv_slots`, `kv_cache_next`)."""
        blocks = self._blocks.get(req.request_id)
        req.kv_slots = len(blocks) * self.block_size if blocks is not None else 0
        req.kv_cache_next = ((self._num_cached.get(req.request_id, 0) + 1) * self.block_size
                             if self.enable_caching else 1 << 62)
