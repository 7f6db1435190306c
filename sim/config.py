"""Engine knobs, named as in vLLM and shared with `runtime/` (DESIGN.md)."""

from __future__ import annotations

from dataclasses import dataclass

from helium_lab.config import QUEUE_ORDERS
from sim.errors import SimError
from sim.host_loads import LOAD_MODES
from sim.host_tier import HostTierConfig

PIN_MODES = ("soft", "hard", "none")
HARD_PIN_FRACTION = 0.5  # runtime/pins.py: pins hold at most this share of the KV blocks


@dataclass(frozen=True)
class EngineConfig:
    """One simulated engine. Give the KV size as `num_gpu_blocks` or `kv_capacity_tokens`.

    `num_gpu_blocks` counts vLLM's reserved null block, so `num_gpu_blocks - 1` are usable;
    `kv_capacity_tokens` is the capacity vLLM logs (`num_gpu_blocks * block_size`).
    Defaults for the batch limits are the reference implementation's
    (max_num_seqs 1024, max_num_batched_tokens 4096; PAPER.md §9).

    `pin_mode` is how prewarmed prefixes are kept: `soft` (Helium's proactive KV cache as
    modelled here: pinned blocks are evicted last, re-warmed when lost) or `hard` (what
    `runtime/pins.py` does to stock vLLM: a finished prewarm's full blocks keep an extra
    reference, never evicted, while all pins fit in `HARD_PIN_FRACTION` of the blocks;
    used to validate against the real engines) or `none` (prefilled once, then cached
    like any prefix: KVFlow with its holding off).

    `host_tier`: a second KV level in host memory (sim/host_tier.py); None = none.
    `host_load`: how host hits reach the GPU: `inline` (loaded in the admitting step,
    overlapped layer by layer: SGLang's HiCache) or `deferred` (loaded beside the forward
    passes while the request waits: KVFlow's fork, sim/host_loads.py).
    `prefetch_steps`: KVFlow's prefetch (`load_ahead_step`): on a step-graph update, the
    host-only blocks of the prefixes matched by agents at most this many steps from
    running load back (needs `host_load="deferred"`); None = no prefetch.
    """

    num_gpu_blocks: int | None = None
    kv_capacity_tokens: int | None = None
    block_size: int = 16
    max_num_seqs: int = 1024
    max_num_batched_tokens: int = 4096
    queue_order: str = "fcfs"
    enable_prefix_caching: bool = True
    max_model_len: int = 40_960
    pin_mode: str = "soft"
    host_tier: HostTierConfig | None = None
    host_load: str = "inline"
    prefetch_steps: int | None = None

    def __post_init__(self) -> None:
        if (self.num_gpu_blocks is None) == (self.kv_capacity_tokens is None):
            raise SimError("EngineConfig: give exactly one of num_gpu_blocks and "
                           f"kv_capacity_tokens (got {self.num_gpu_blocks}, "
                           f"{self.kv_capacity_tokens})")
        for knob in ("block_size", "max_num_seqs", "max_num_batched_tokens", "max_model_len"):
            if getattr(self, knob) <= 0:
                raise SimError(f"EngineConfig: {knob} must be positive, got "
                               f"{getattr(self, knob)}")
        if self.queue_order not in QUEUE_ORDERS:
            raise SimError(f"EngineConfig: unknown queue_order {self.queue_order!r}; "
                           f"choose one of {', '.join(QUEUE_ORDERS)}")
        if self.pin_mode not in PIN_MODES:
            raise SimError(f"EngineConfig: unknown pin_mode {self.pin_mode!r}; "
                           f"choose one of {', '.join(PIN_MODES)}")
        if self.host_load not in LOAD_MODES:
            raise SimError(f"EngineConfig: unknown host_load {self.host_load!r}; "
                           f"choose one of {', '.join(LOAD_MODES)}")
        if self.prefetch_steps is not None and (self.prefetch_steps < 0
                                                or self.host_load != "deferred"
                                                or self.host_tier is None):
            raise SimError("EngineConfig: prefetch_steps must be >= 0 and needs a host tier "
                           f"with host_load='deferred' (got {self.prefetch_steps}, "
                           f"{self.host_load!r})")
        if self.host_tier is not None and not self.enable_prefix_caching:
            raise SimError("EngineConfig: a host KV tier (host_tier) needs "
                           "enable_prefix_caching")
        if self.resolved_num_gpu_blocks < 2:
            raise SimError(f"EngineConfig: KV cache of {self.resolved_num_gpu_blocks} blocks "
                           "is too small (one block is vLLM's null block)")

    @property
    def resolved_num_gpu_blocks(self) -> int:
        if self.num_gpu_blocks is not None:
            return self.num_gpu_blocks
        assert self.kv_capacity_tokens is not None
        return self.kv_capacity_tokens // self.block_size
