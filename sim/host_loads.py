"""Host->GPU loads that run beside the forward passes: KVFlow's fork of SGLang's HiCache.

Upstream HiCache loads a request's host-resident prefix inside the step that admits it,
layer by layer (`HostTier.step_time`, the `inline` load mode). KVFlow's fork
(PanZaifeng/KVFlow, `python/sglang/srt/managers/scheduler.py`,
`get_new_batch_prefill`) does not: for each waiting request it asks the radix cache for
the state of the request's matched chain (`get_node_chain_status(req.last_host_node)`);
an evicted-but-backed-up chain starts `load_back(node, priority=0, check_reserve=True)`
and the request is skipped (`continue`); a chain still loading is skipped too; other
requests are admitted meanwhile. That is the `deferred` load mode, and its loads are the
jobs of this module. The same loads serve KVFlow's prefetch (`DispatchLoadTasks`,
scheduler_output_processor_mixin.py), which engines start on a step-graph update.

Mechanism (hiradix_cache.py, `load_back`): all host blocks of the chain or none; only if
they fit in the free plus evictable GPU blocks (`check_reserve`, else the load is denied
and retried later); fresh GPU blocks are taken at once (evicting cached ones) and locked
until the copy ends (`inc_lock_ref`); the copies share one host->GPU link, so a load
starts when the previous one ends and takes `blocks x block_bytes / link bandwidth`
(HostTier's per-block transfer time). When a load ends its blocks are cached, unlocked
and evictable, and the blocks' requests can be admitted with a GPU hit.

Not modelled: the fork's per-load priorities (loads run in the order started) and the
storage (L3) tier.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from sim.block_hash import BlockHashT
from sim.block_pool import Block, BlockPool
from sim.host_tier import HostTier


@dataclass(frozen=True)
class _Load:
    done_t: float
    blocks: list[Block]
    hashes: tuple[BlockHashT, ...]


class BackgroundLoads:
    """In-flight host->GPU loads of one engine, in link order. Times are simulated
    seconds; `complete(now)` must be called before anything reads the GPU cache at
    `now` (the scheduler does, at the start of each step)."""

    def __init__(self, pool: BlockPool, host: HostTier) -> None:
        self.pool = pool
        self.host = host
        self.link_free_at = 0.0
        self.loading: set[BlockHashT] = set()
        self._jobs: deque[_Load] = deque()
        self._started: list[float] = []  # done times not yet handed to the engine
        # counters (blocks, seconds)
        self.num_deferred_blocks = 0
        self.num_prefetched_blocks = 0
        self.num_denied = 0
        self.load_s = 0.0

    def __len__(self) -> int:
        return len(self._jobs)

    def start(self, now: float, hashes: Sequence[BlockHashT], *, prefetch: bool) -> bool:
        """Load these host-resident hashes (none loading or GPU-cached) into fresh GPU
        blocks; False (nothing changes) if they don't fit in the free plus evictable
        blocks."""
        n = len(hashes)
        if n == 0:
            return True
        if n > self.pool.get_num_free_blocks():
            self.num_denied += 1
            return False
        blocks = self.pool.get_new_blocks(n)  # locked (ref 1) until the copy ends
        self.host.begin_background_load(hashes)
        begin = max(now, self.link_free_at)
        seconds = n * self.host.block_transfer_s
        done = self.link_free_at = begin + seconds
        self._jobs.append(_Load(done, blocks, tuple(hashes)))
        self.loading.update(hashes)
        self._started.append(done)
        self.load_s += seconds
        if prefetch:
            self.num_prefetched_blocks += n
        else:
            self.num_deferred_blocks += n
        return True

    def complete(self, now: float) -> None:
        """Finish every load that ended by `now`: cache its blocks and unlock them
        (deepest block first to evict, as a request's blocks are freed)."""
        jobs = self._jobs
        while jobs and jobs[0].done_t <= now:
            job = jobs.popleft()
            self.loading.difference_update(job.hashes)
            self.pool.cache_full_blocks(job.blocks, list(job.hashes), 0, len(job.blocks))
            self.pool.free_blocks(reversed(job.blocks))

    def held_blocks(self) -> list[list[Block]]:
        """The GPU blocks each in-flight load holds (integrity checks)."""
        return [job.blocks for job in self._jobs]

    def next_done(self) -> float | None:
        """When the earliest in-flight load ends, None if none."""
        return self._jobs[0].done_t if self._jobs else None

    def take_started(self) -> list[float]:
        """End times of the loads started since the last call (the engine wakes then)."""
        started, self._started = self._started, []
        return started

    def stats(self) -> dict[str, float]:
        return {
            "host_deferred_loaded_blocks": float(self.num_deferred_blocks),
            "host_prefetched_blocks": float(self.num_prefetched_blocks),
            "host_loads_denied": float(self.num_denied),
            "host_background_load_s": self.load_s,
        }
