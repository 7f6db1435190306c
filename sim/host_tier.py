"""A second KV level in host memory (CPU DRAM): SGLang's HiCache, as a per-engine tier.

Mechanism (SGLang `python/sglang/srt/mem_cache/hiradix_cache.py`, class `HiRadixCache`,
and `managers/cache_controller.py`, class `HiCacheController`), mapped onto vLLM-style
hashed blocks:

- **Write policy** (`hicache_write_policy`, server_args.py default `write_through`):
  `write_through` copies a block GPU->host as soon as it is cached (`insert` ->
  `_inc_hit_count`, `write_through_threshold = 1`); `write_through_selective` copies it
  once it has been used twice (threshold 2: cached once, then hit once more);
  `write_back` copies only when the GPU evicts it (`evict` -> `write_backup(write_back=
  True)` then `writing_check(write_back=True)`, which BLOCKS until the copies finish: the
  engine pays that time before its next forward pass). Write-through copies run on their
  own CUDA stream (`start_writing`, `write_stream`) and cost the engine no time here; a
  write that finds the host full and nothing evictable is skipped (`write_backup` returns
  0) and retried at the block's next use.
- **Host eviction** (`evict_host`): LRU over host copies whose block is no longer on the
  GPU ("only evict the host value of evicted nodes"); a block on both tiers stays on the
  host, so write-through never drops a host copy that the GPU still has.
- **Load back** (`load_back`, `init_load_back`): a prefix lookup continues past the GPU's
  cached blocks into the host's; host blocks get fresh GPU blocks (the same number a
  recompute needs) and are copied host->GPU in the admitting step, all or nothing, and
  only if at least `load_back_threshold = 10` tokens. The copy is layer by layer on a
  load stream and each layer's forward waits for its layer (`LayerDoneCounter`,
  `LayerLoadingEvent.wait`), so with L layers, compute c and transfer l per step the step
  takes `max(c + l / L, l + c / L)` (the per-layer pipeline's makespan).

Sizes: `hicache_size` (GB) when set, else `hicache_ratio` (default 2.0) x the GPU pool
(memory_pool_host.py, `HostKVCache.__init__`), which also refuses a pool larger than the
host's available memory less 10 GB. `sim/session.py` applies both.

Not modelled: PCIe contention between write-through copies and loads (full duplex: they
use opposite directions; a D2H backlog would need prefill faster than the link, ~50x
what an 8B model prefills), HBM contention of the copies, the storage (L3) tier and its
prefetch, and write-back of a block whose write is still in flight.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from helium_lab.config import WRITE_POLICIES
from sim.block_hash import BlockHashT
from sim.errors import SimError

HICACHE_RATIO = 2.0  # server_args.py ServerArgs.hicache_ratio
HOST_RESERVE_BYTES = 10 * (1 << 30)  # HostKVCache.__init__: "preserve at least 10GB"
LOAD_BACK_THRESHOLD_TOKENS = 10  # HiRadixCache.__init__: load_back_threshold
_WRITE_THRESHOLD = {"write_through": 1, "write_through_selective": 2}  # HiRadixCache.__init__


@dataclass(frozen=True)
class HostTierConfig:
    """One engine's host tier: `num_blocks` blocks of the engine's block size, the write
    policy, and what a transfer costs: KV bytes per token, the achieved host<->GPU
    bandwidth per direction (bytes/s) and the model's layers (load/compute overlap)."""

    num_blocks: int
    write_policy: str = "write_through"
    kv_bytes_per_token: int = 0
    link_bytes_per_s: float = 0.0
    num_layers: int = 1

    def __post_init__(self) -> None:
        if self.write_policy not in WRITE_POLICIES:
            raise SimError(f"HostTierConfig: unknown write_policy {self.write_policy!r}; "
                           f"choose one of {', '.join(WRITE_POLICIES)}")
        if self.num_blocks < 1:
            raise SimError(f"HostTierConfig: num_blocks must be >= 1, got {self.num_blocks}")
        if self.kv_bytes_per_token < 0 or self.link_bytes_per_s <= 0 or self.num_layers < 1:
            raise SimError("HostTierConfig: kv_bytes_per_token >= 0, link_bytes_per_s > 0 "
                           f"and num_layers >= 1 needed, got {self.kv_bytes_per_token}, "
                           f"{self.link_bytes_per_s}, {self.num_layers}")


class HostTier:
    """Host copies of GPU blocks, keyed by block hash.

    A hash on the host is either `resident` (the GPU caches it too: never evicted from the
    host) or in `lru` (host only, least recently used first: the eviction candidates)."""

    def __init__(self, config: HostTierConfig, block_size: int) -> None:
        self.config = config
        self.block_size = block_size
        self.capacity = config.num_blocks
        self.policy = config.write_policy
        self._threshold = _WRITE_THRESHOLD.get(self.policy, 0)
        self.resident: set[BlockHashT] = set()
        self.lru: OrderedDict[BlockHashT, None] = OrderedDict()
        self._uses: dict[BlockHashT, int] = {}  # write_through_selective: uses so far
        self._block_s = block_size * config.kv_bytes_per_token / config.link_bytes_per_s
        # counters (blocks)
        self.num_written = 0
        self.num_write_skipped = 0  # host full of GPU-resident copies
        self.num_loaded = 0
        self.num_host_evicted = 0
        self.num_written_back = 0
        self.load_s = 0.0  # transfer time of all loads (overlapped with compute)
        self.stall_s = 0.0  # time the engine waited for write-back copies
        # per step, consumed by `step_time`
        self._step_load_blocks = 0
        self._step_stall_blocks = 0

    # -- queries -------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.resident) + len(self.lru)

    def __contains__(self, h: BlockHashT) -> bool:
        return h in self.resident or h in self.lru

    def match(self, hashes: Sequence[BlockHashT], start: int) -> int:
        """How many of `hashes[start:]`, from the first, the host holds."""
        n = 0
        for h in hashes[start:]:
            if h not in self.resident and h not in self.lru:
                break
            n += 1
        return n

    # -- hooks (called by the block pool and the KV cache manager) ------------------------

    def on_cached(self, hashes: Iterable[BlockHashT]) -> None:
        """Blocks just cached on the GPU (computed or loaded): a write-through copy."""
        thr = self._threshold
        for h in hashes:
            if h in self.resident:
                continue  # a second GPU copy of a block the host has
            if h in self.lru:
                del self.lru[h]  # back on the GPU (loaded, or recomputed)
                self.resident.add(h)
            elif thr == 1:
                self._write(h)
            elif thr:
                uses = self._uses.get(h, 0) + 1
                self._uses[h] = uses
                if uses >= thr:
                    self._write(h)

    def on_gpu_hit(self, hashes: Iterable[BlockHashT]) -> None:
        """A request reuses these GPU blocks (SGLang counts the use at insert)."""
        thr = self._threshold
        if not thr:
            return
        for h in hashes:
            if h in self.resident:
                continue
            uses = self._uses.get(h, 0) + 1
            self._uses[h] = uses
            if uses >= thr:
                self._write(h)

    def on_gpu_evicted(self, h: BlockHashT) -> None:
        """The GPU's last copy of `h` was evicted."""
        self._uses.pop(h, None)
        if h in self.resident:
            self.resident.remove(h)
            self.lru[h] = None  # host only now: most recently used
        elif self.policy == "write_back" and self._make_room():
            self.lru[h] = None
            self.num_written_back += 1
            self._step_stall_blocks += 1

    def begin_load(self, hashes: Sequence[BlockHashT]) -> None:
        """A request admitted with these host blocks: they are copied to fresh GPU blocks
        this step (locked on the host from now: they become GPU-resident)."""
        for h in hashes:
            if h in self.lru:
                del self.lru[h]
                self.resident.add(h)
        self.num_loaded += len(hashes)
        self._step_load_blocks += len(hashes)

    def begin_background_load(self, hashes: Sequence[BlockHashT]) -> None:
        """These host blocks are being copied to the GPU beside the forward passes
        (sim/host_loads.py): locked on the host like `begin_load`, but the step pays no
        transfer time."""
        for h in hashes:
            if h in self.lru:
                del self.lru[h]
                self.resident.add(h)
        self.num_loaded += len(hashes)

    @property
    def block_transfer_s(self) -> float:
        """Seconds to copy one block over the host<->GPU link."""
        return self._block_s

    # -- time ----------------------------------------------------------------------------

    def step_time(self, compute_s: float) -> float:
        """The step's duration given its compute time: write-back stalls first, then the
        forward pass overlapped layer by layer with this step's loads."""
        if not self._step_load_blocks and not self._step_stall_blocks:
            return compute_s
        load = self._step_load_blocks * self._block_s
        stall = self._step_stall_blocks * self._block_s
        self._step_load_blocks = self._step_stall_blocks = 0
        self.load_s += load
        self.stall_s += stall
        if not load:
            return stall + compute_s
        n = self.config.num_layers
        return stall + max(compute_s + load / n, load + compute_s / n)

    def pending_stall_s(self) -> float:
        """Write-back time owed by evictions outside a scheduled step (a decode run),
        paid before the next step; resets it."""
        stall = self._step_stall_blocks * self._block_s
        self._step_stall_blocks = 0
        self.stall_s += stall
        return stall

    def stats(self) -> dict[str, float]:
        return {
            "host_blocks": float(len(self)),
            "host_written_blocks": float(self.num_written),
            "host_write_skipped_blocks": float(self.num_write_skipped),
            "host_written_back_blocks": float(self.num_written_back),
            "host_loaded_blocks": float(self.num_loaded),
            "host_evicted_blocks": float(self.num_host_evicted),
            "host_load_s": self.load_s,
            "host_stall_s": self.stall_s,
        }

    # -- invariants ----------------------------------------------------------------------

    def check_integrity(self, gpu_cached: Iterable[BlockHashT] = (),
                        loading: Iterable[BlockHashT] = ()) -> None:
        assert len(self) <= self.capacity, f"host holds {len(self)} > {self.capacity} blocks"
        assert not self.resident & self.lru.keys(), "hash both resident and host-only"
        gpu = set(gpu_cached) | set(loading)
        assert self.resident <= gpu, "a resident host copy the GPU does not cache"
        assert not gpu & self.lru.keys(), "a host-only copy the GPU caches"

    # -- internals -----------------------------------------------------------------------

    def _make_room(self) -> bool:
        if len(self.resident) + len(self.lru) < self.capacity:
            return True
        if not self.lru:
            return False
        self.lru.popitem(last=False)
        self.num_host_evicted += 1
        return True

    def _write(self, h: BlockHashT) -> None:
        if self._make_room():
            self.resident.add(h)
            self._uses.pop(h, None)
            self.num_written += 1
        else:
            self.num_write_skipped += 1
