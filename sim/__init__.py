"""SimPy backend: simulated vLLM-style engines on H100-class GPUs.

Mechanism (block pool, KV cache manager, scheduler, engine, driver) lives apart from
policy (waiting-queue order) and from cost (cost models over model and hardware shapes).
`helium_lab` never imports this package; this package may import `helium_lab`.

Entry points: `simulate` / `Simulation` (driver.py), `EngineConfig` (config.py), cost
models (cost_model.py) over `get_model` / `get_hardware` shapes, `kv_capacity_tokens`
(capacity.py), and `python -m sim.replay` for token traces.
"""

from sim.capacity import kv_capacity_tokens
from sim.config import EngineConfig
from sim.cost_model import BatchShape, ConstantCost, CostModel, FittedStepCost, RooflineCost
from sim.driver import SimResult, Simulation, simulate
from sim.engine import IterationSample, SimEngine
from sim.errors import SimError
from sim.hardware import get_hardware
from sim.models import get_model

__all__ = [
           "BatchShape",
           "ConstantCost",
           "CostModel",
           "EngineConfig",
           "FittedStepCost",
           "IterationSample",
           "RooflineCost",
           "SimEngine",
           "SimError",
           "SimResult",
           "Simulation",
           "get_hardware",
           "get_model",
           "kv_capacity_tokens",
           "simulate",
]
