"""Proactive KV caching on stock vLLM: pinned prefixes held by a phantom reference.

vLLM has no pin API. Its block pool evicts only blocks on the free queue, i.e. blocks with
`ref_cnt == 0`; a block that a running request shares has `ref_cnt > 0` and is never
evicted. A pin is that, made permanent: when a prewarm request (a prefill-only request,
`max_tokens=1`) releases its blocks, the hook takes one extra reference on its *full*
blocks with the pool's own `touch` (what a request hitting the cache does) before vLLM's
free runs, so the blocks stay cached and off the free queue across runs of the session.
`release_all` gives the references back with `free_blocks`.

    prewarm request finishes -> KVCacheManager.free(req)   (or pop_blocks_for_free)
                                  ^ hook: block_pool.touch(full blocks of req)  ref 1 -> 2
                                  original free                                 ref 2 -> 1
    pinned: ref_cnt >= 1, never on the free queue, hits as usual

Narrow and version-checked: it wraps two methods of one engine's `KVCacheManager`
instance (nothing global) and uses `get_blocks`, `BlockPool.touch`, `free_blocks` and
`KVCacheBlock.block_hash`, checked on install against the vLLM versions it was tested
with (`TESTED_VLLM`). Elsewhere `install` returns None and the engine falls back to
re-warming: every run prewarms its prefixes again (cheap when they are still cached).

Hard pins could starve the engine, so they are capped: a prefix is pinned only while all
pins together hold at most `max_fraction` of the KV blocks; beyond that it is prewarmed
but unpinned (LRU as usual). Pinned blocks count as used in `kv_usage`, as in vLLM.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

TESTED_VLLM = ("0.32.0",)


class PrefixPins:
    """Pins of one engine, keyed by the prefix's token ids."""

    def __init__(self, kv_manager: Any, block_size: int, num_blocks: int,
                 max_fraction: float = 0.5) -> None:
        self.kv = kv_manager
        self.pool = kv_manager.block_pool
        self.block_size = block_size
        self.max_blocks = int(num_blocks * max_fraction)
        self.pinned: dict[tuple[int, ...], list[Any]] = {}
        self.wanted: dict[str, tuple[int, ...]] = {}  # prewarm request id -> prefix
        self.num_refused = 0

    @property
    def num_blocks(self) -> int:
        return sum(len(b) for b in self.pinned.values())

    def is_pinned(self, prefix: tuple[int, ...]) -> bool:
        return prefix in self.pinned

    def want(self, request_id: str, prefix: tuple[int, ...]) -> None:
        """Pin `prefix` when prewarm request `request_id` releases its blocks."""
        self.wanted[request_id] = prefix

    def _on_release(self, request: Any) -> None:
        prefix = self.wanted.pop(request.request_id, None)
        if prefix is None or prefix in self.pinned:
            return
        n_full = len(prefix) // self.block_size
        if request.num_computed_tokens < n_full * self.block_size:
            return  # preempted before its prefill finished: nothing complete to pin
        blocks = list(self.kv.get_blocks(request.request_id).blocks[0][:n_full])
        if len(blocks) < n_full or any(b.block_hash is None for b in blocks):
            return
        if self.num_blocks + n_full > self.max_blocks:
            self.num_refused += 1
            return
        self.pool.touch(blocks)
        self.pinned[prefix] = blocks

    def release_all(self) -> None:
        for blocks in self.pinned.values():
            self.pool.free_blocks(reversed(blocks))
        self.pinned.clear()


def install(kv_manager: Any, block_size: int, num_blocks: int, vllm_version: str,
            max_fraction: float = 0.5) -> PrefixPins | None:
    """Hook pins into one engine's KV cache manager, or None on an untested vLLM."""
    needed = [(kv_manager, "free"), (kv_manager, "pop_blocks_for_free"),
              (kv_manager, "get_blocks"), (kv_manager, "block_pool")]
    if vllm_version not in TESTED_VLLM or not all(hasattr(o, a) for o, a in needed):
        return None
    pool = kv_manager.block_pool
    if not (hasattr(pool, "touch") and hasattr(pool, "free_blocks")):
        return None
    pins = PrefixPins(kv_manager, block_size, num_blocks, max_fraction)

    def wrap(fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
        def hooked(request: Any) -> Any:
            pins._on_release(request)
            return fn(request)
        return hooked

    kv_manager.free = wrap(kv_manager.free)
    kv_manager.pop_blocks_for_free = wrap(kv_manager.pop_blocks_for_free)
    return pins
