"""GPU datasheet numbers the roofline cost model and the KV sizing use.

`memory_bytes` is what the driver reports (nvidia-smi total, MiB), the base vLLM's
`gpu_memory_utilization` applies to: H100 SXM 81559 MiB, H100 NVL 95830 MiB, H200
143771 MiB. Peaks are dense BF16 tensor-core FLOP/s and HBM bandwidth from NVIDIA's
datasheets (H100 NVL: half of the 1,671 TFLOP/s sparse figure).

The host KV tier (sim/host_tier.py) reads the host link and memory:

- `host_link_bandwidth`: PCIe Gen5 x16, 128 GB/s bidirectional in NVIDIA's H100 (SXM and
  NVL) and H200 datasheets = 64 GB/s per direction.
- `host_link_efficiency`: the achieved fraction of it for large pinned-memory copies.
  ASSUMPTION, not a sourced measurement: 0.8 (~51 GB/s). PCIe Gen5's 128b/130b encoding
  and TLP overheads put the ceiling near 0.9; the copies of KV blocks (one to a few MB
  each with vLLM's and SGLang's page-first layouts) are assumed to reach a bit less.
  Replace with a measurement on the target machine (e.g. nvbandwidth
  host_to_device_memcpy_ce) when one is available.
- `host_memory_bytes`: the machine's DRAM. ASSUMPTION: 512 GiB; the paper names the CPU
  (AMD EPYC 9554) but not the DRAM size. Only used to refuse a host tier that could not
  be allocated (SGLang: `HostKVCache.__init__` keeps 10 GB free).
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
    host_link_bandwidth: float = 64e9  # bytes/s per direction (PCIe Gen5 x16 datasheet)
    host_link_efficiency: float = 0.8  # achieved fraction: ASSUMPTION (module docstring)
    host_memory_bytes: int = 512 * GIB  # machine DRAM: ASSUMPTION (module docstring)

    @property
    def host_link_achieved(self) -> float:
        """Host<->GPU bytes/s per direction the KV copies get."""
        return self.host_link_bandwidth * self.host_link_efficiency


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
