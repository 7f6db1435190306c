"""KV cache capacity of a vLLM engine, derived from memory the way vLLM sizes it.

vLLM gives the KV cache what is left of `gpu_memory_utilization * total memory` after the
weights and the peak of its profiling run (activations, plus non-torch allocations and
CUDA graphs), then rounds down to whole blocks::

    tokens = floor((util * total - weights - reserve) / (kv_bytes_per_token * B)) * B

The reserve defaults to 3 GiB: roughly 1-1.5 GiB of activations for an 8B-32B model at
a few thousand batched tokens plus 1.5-2 GiB of non-torch memory and CUDA graphs. The
capacities the reference implementation recorded on an H100 NVL (PAPER.md §9) imply
3.0-3.3 GiB for all four models; tests check the derived capacities against them.
"""

from __future__ import annotations

from sim.errors import SimError
from sim.hardware import GIB, Hardware
from sim.models import ModelShape


def kv_capacity_tokens(model: ModelShape, hardware: Hardware, *,
                       gpu_memory_utilization: float = 0.9,
                       activation_reserve_bytes: int = 3 * GIB,
                       block_size: int = 16) -> int:
    """KV capacity in tokens (a multiple of `block_size`) of one engine on one GPU."""
    free = (gpu_memory_utilization * hardware.memory_bytes - model.weight_bytes
            - activation_reserve_bytes)
    blocks = int(free // (model.kv_bytes_per_token * block_size))
    if blocks < 2:
        raise SimError(f"{model.name} does not fit on {hardware.name} at "
                       f"gpu_memory_utilization={gpu_memory_utilization}: "
                       f"{free / GIB:.1f} GiB left for KV")
    return blocks * block_size
