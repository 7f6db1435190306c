"""Proactive KV caching on stock vLLM: soft pins (default) and hard pins, per engine.

vLLM has no pin API; two mechanisms are built from its block pool's own methods, each on
one engine's instances only (nothing global is patched), checked on install against the
vLLM versions they were tested with (`TESTED_VLLM`; elsewhere `install` returns None and
the engine falls back to re-warming: every run prewarms its prefixes again, and `retain`
/ `release` hints are ignored).

Soft pins (`runtime/soft_pins.py`, the simulator's model, sim/block_pool.py): a pinned
free block is parked beside the free queue and evicted only when no ordinary free block is
left; it still counts as free capacity, so pins never refuse or preempt a request, and an
evicted pinned prefix is just a miss (re-warmed when prewarmed again). They serve

- prewarms in mode `soft` (`engine.prewarm_pin`, the same key sets the simulator's
  `pin_mode`): each prewarm pins its prefix's full blocks (one more pin per prewarm, as
  `SimEngine.prewarm`), then runs unless all of them are cached;
- retention (`LLMCall.retain` / `release`), in every mode, as `SimEngine.submit` and the
  simulator's admission: a call's submit pins the full blocks of its first `n` prompt
  tokens for each `n` in `retain`; a call's first admission (vLLM allocates its slots)
  drops one pin from its first `n` tokens' blocks for each `n` in `release`.

Hard pins (mode `hard`, kept to compare): a phantom reference. When a prewarm request
(prefill-only, `max_tokens=1`) releases its blocks, a hook takes one extra reference on
its *full* blocks with the pool's own `touch` (what a request hitting the cache does)
before vLLM's free runs, so the blocks stay cached and off the free queue across runs of
the session. `release_all` gives the references back with `free_blocks`.

    prewarm request finishes -> KVCacheManager.free(req)   (or pop_blocks_for_free)
                                  ^ hook: block_pool.touch(full blocks of req)  ref 1 -> 2
                                  original free                                 ref 2 -> 1
    hard-pinned: ref_cnt >= 1, never on the free queue, hits as usual

Hard pins could starve the engine, so they are capped: a prefix is pinned only while all
pins together hold at most `max_fraction` of the KV blocks; beyond that it is prewarmed
but unpinned (LRU as usual). Hard-pinned blocks count as used in `kv_usage`, as in vLLM;
soft-pinned free blocks count as free, as in the simulator.

Mode `none`: prewarmed unless cached, then cached like any prefix (retention still soft).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from helium_lab.config import PREWARM_PINS
from helium_lab.errors import ConfigError
from runtime import soft_pins
from runtime.errors import RuntimeBackendError

TESTED_VLLM = ("0.32.0",)
NO_PINS = {"pinned_blocks": 0.0, "pins_refused": 0.0, "soft_pinned_free_blocks": 0.0,
           "evicted_pinned_blocks": 0.0}  # `EnginePins.stats` of an engine without pins


class PrefixPins:
    """Hard pins of one engine, keyed by the prefix's token ids."""

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


def install_hard(kv_manager: Any, block_size: int, num_blocks: int, vllm_version: str,
                 max_fraction: float = 0.5) -> PrefixPins | None:
    """Hook hard pins into one engine's KV cache manager, or None on an untested vLLM."""
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


class EnginePins:
    """Proactive KV of one engine: prewarm pins as `mode` says, retention soft-pinned."""

    def __init__(self, mode: str, soft: soft_pins.SoftPins, hard: PrefixPins | None) -> None:
        self.mode = mode
        self.soft = soft
        self.hard = hard
        self.block_size = soft.block_size
        self._checked = False

    def before_prewarm(self, prompt_ids: tuple[int, ...]) -> bool:
        """Pin `prompt_ids` as the mode says; whether its prewarm request must run (no in
        mode `hard` when hard-pinned, else when all its full blocks are cached)."""
        if self.hard is not None:
            return not self.hard.is_pinned(prompt_ids)
        hashes = self.soft.prefix_hashes(prompt_ids)
        if self.mode == "soft":
            self.soft.pin(hashes)
        return self.soft.cached_prefix_blocks(hashes) < len(hashes)

    def prewarm_added(self, request: Any, prompt_ids: tuple[int, ...]) -> None:
        """The prewarm of `prompt_ids` is vLLM request `request`: hard-pin it on release;
        the first time, check `prefix_hashes` against vLLM's own hashes of the request."""
        if not self._checked:
            ours = self.soft.prefix_hashes(prompt_ids)
            if list(request.block_hashes[:len(ours)]) != ours:
                raise RuntimeBackendError(
                    "runtime.pins: this vLLM hashes prompt blocks differently from "
                    "runtime/soft_pins.py (prefix_hashes); soft pins would miss. Set "
                    "engine.prewarm_pin=hard or use a vLLM in pins.TESTED_VLLM")
            self._checked = True
        if self.hard is not None:
            self.hard.want(request.request_id, prompt_ids)

    def submitted(self, request: Any, retain: Sequence[int], release: Sequence[int]) -> None:
        """A call became vLLM request `request`: pin its first n prompt tokens' full
        blocks for each n in `retain` now; release one pin for each n in `release` when it
        is first admitted."""
        hashes, bs = request.block_hashes, self.block_size
        for n in retain:
            self.soft.pin(hashes[:n // bs])
        self.soft.release_on_admission(request.request_id,
                                       [hashes[:n // bs] for n in release])

    def forget(self, request_ids: Sequence[str]) -> None:
        """Aborted requests: their pending releases are dropped (never admitted)."""
        for rid in request_ids:
            self.soft.releases.pop(rid, None)

    def stats(self) -> dict[str, float]:
        hard = self.hard
        return {
            "pinned_blocks": float(hard.num_blocks if hard is not None
                                   else self.soft.num_pinned_blocks),
            "pins_refused": float(hard.num_refused if hard is not None else 0),
            "soft_pinned_free_blocks": float(len(self.soft.parked)),
            "evicted_pinned_blocks": float(self.soft.num_evicted),
        }

    def release_all(self) -> None:
        if self.hard is not None:
            self.hard.release_all()


def install(kv_manager: Any, mode: str, block_size: int, num_blocks: int, vllm_version: str,
            hash_algo: str, max_fraction: float = 0.5) -> EnginePins | None:
    """Install one engine's pins (`mode`: soft, hard or none; see the module docstring), or
    None where this vLLM is untested or lacks what the hooks need."""
    if mode not in PREWARM_PINS:
        raise ConfigError(f"engine.prewarm_pin: unknown {mode!r}; known: {list(PREWARM_PINS)}")
    soft = soft_pins.install(kv_manager, block_size, vllm_version, hash_algo, TESTED_VLLM)
    if soft is None:
        return None
    hard = None
    if mode == "hard":
        hard = install_hard(kv_manager, block_size, num_blocks, vllm_version, max_fraction)
        if hard is None:
            raise RuntimeBackendError("runtime.pins: hard pins need KVCacheManager.free, "
                                      "pop_blocks_for_free and get_blocks, missing in this "
                                      f"vLLM {vllm_version}; set engine.prewarm_pin=soft")
    return EnginePins(mode, soft, hard)
