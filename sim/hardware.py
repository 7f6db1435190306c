"""GPU datasheet numbers the roofline cost model and the KV sizing use, typed.

The numbers are data: `conf/hardware/<name>.yaml` (the run's `hardware:` block), each with
its source. `memory_bytes` is what the driver reports (nvidia-smi total, given in MiB), the
base vLLM's `gpu_memory_utilization` applies to; peaks are dense BF16 tensor-core FLOP/s and
HBM bandwidth from NVIDIA's datasheets. The host KV tier (sim/host_tier.py) reads the
GPU's host link (`host_link_bandwidth` per direction, `host_link_efficiency` the achieved
fraction: an assumption, see the yaml) and the machine's DRAM (`host_memory_bytes`, also
an assumption, only used to refuse a tier that could not be allocated).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from sim.errors import SimError

HARDWARE_CONF = Path(__file__).resolve().parents[1] / "conf" / "hardware"

MIB = 1 << 20
GIB = 1 << 30


@dataclass(frozen=True)
class Hardware:
    name: str
    memory_bytes: int
    mem_bandwidth: float  # bytes/s
    peak_flops: float  # dense bf16 FLOP/s
    host_link_bandwidth: float = 64e9  # bytes/s per direction (PCIe Gen5 x16 datasheet)
    host_link_efficiency: float = 0.8  # achieved fraction: ASSUMPTION (conf/hardware)
    host_memory_bytes: int = 512 * GIB  # machine DRAM: ASSUMPTION (conf/hardware)

    @property
    def host_link_achieved(self) -> float:
        """Host<->GPU bytes/s per direction the KV copies get."""
        return self.host_link_bandwidth * self.host_link_efficiency


def hardware_from_dict(data: Mapping[str, Any], where: str = "hardware") -> Hardware:
    """A `hardware:` block (conf/hardware/*.yaml) as `Hardware`; a missing, unknown or
    non-positive key raises naming `where`.<key>."""
    keys = ("name", "memory_mib", "mem_bandwidth", "peak_flops", "host_link_bandwidth",
            "host_link_efficiency", "host_memory_mib")
    unknown = sorted(set(data) - set(keys))
    missing = [k for k in keys if k not in data]
    if unknown or missing:
        raise SimError(f"{where}: unknown key(s) {unknown}, missing key(s) {missing}; a "
                       f"hardware block has exactly {list(keys)}")
    for k in keys[1:]:
        v = data[k]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
            raise SimError(f"{where}.{k} must be a positive number, got {v!r}")
    if data["host_link_efficiency"] > 1:
        raise SimError(f"{where}.host_link_efficiency is a fraction of the link (<= 1), got "
                       f"{data['host_link_efficiency']!r}")
    return Hardware(str(data["name"]), int(data["memory_mib"]) * MIB,
                    float(data["mem_bandwidth"]), float(data["peak_flops"]),
                    float(data["host_link_bandwidth"]), float(data["host_link_efficiency"]),
                    int(data["host_memory_mib"]) * MIB)


def get_hardware(name: str) -> Hardware:
    """The card of `conf/hardware/<name>.yaml` ('H100 NVL', 'h100_nvl', 'h100-nvl' work)."""
    key = name.lower().replace("_", "-").replace(" ", "-")
    path = HARDWARE_CONF / f"{key}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in HARDWARE_CONF.glob("*.yaml"))
        raise SimError(f"unknown hardware {name!r}; known: {', '.join(known)}")
    data = OmegaConf.to_container(OmegaConf.load(path))
    assert isinstance(data, dict)
    return hardware_from_dict({str(k): v for k, v in data.items()}, f"conf/hardware/{key}.yaml")
