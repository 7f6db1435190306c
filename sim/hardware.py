"""GPU datasheet numbers the roofline cost model and the KV sizing use.

`memory_bytes` is what the driver reports (nvidia-smi total, MiB), the base vLLM's
`gpu_memory_utilization` applies to: H100 SXM 81559 MiB, H100 NVL 95830 MiB, H200
143771 MiB. Peaks are dense BF16 tensor-core FLOP/s and HBM bandwidth from NVIDIA's
datasheets (H100 NVL: half of the 1,671 TFLOP/s sparse figure).
"""

from __future__ import annotations

from dataclasses import dataclass

from sim.errors import SimError

MIB = 1 << 20
GIB = 1 << 30


@dataclass(frozen=True)
class Hardware:
    name: str
    memory_bytes: int
    mem_bandwidth: float  # bytes/s
    peak_flops: float  # dense bf16 FLOP/s


HARDWARE: dict[str, Hardware] = {
    h.name: h
    for h in (
        Hardware("h100-sxm", 81559 * MIB, 3.35e12, 989e12),
        Hardware("h100-nvl", 95830 * MIB, 3.9e12, 835e12),
        Hardware("h200", 143771 * MIB, 4.8e12, 989e12),
    )
}


def get_hardware(name: str) -> Hardware:
    key = name.lower().replace("_", "-").replace(" ", "-")
    if key not in HARDWARE:
        raise SimError(f"unknown hardware {name!r}; known: {', '.join(HARDWARE)}")
    return HARDWARE[key]
