"""Build a simulated backend session from the run's typed settings.

    session = open_session(model, engine, num_workers, orchestration=..., sim=SimSettings())

One `SimEngine` per worker, all with the same `EngineConfig`: the KV capacity is the
engine setting if given, else derived from the model's and hardware's memory the way vLLM
sizes it (`capacity.py`). The cost model is the roofline for (model, hardware) or a
profiled table (`FittedStepCost`) fitted to a real engine.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from helium_lab.config import (
    EngineSettings,
    ModelSettings,
    Orchestration,
    check_keys,
    check_types,
)
from helium_lab.errors import ConfigError
from helium_lab.tokenizer import Tokenizer
from sim.capacity import kv_capacity_tokens
from sim.client import ClientCost, PoolCost, ServerCost
from sim.config import EngineConfig
from sim.cost_model import CostModel, FittedStepCost, RooflineCost
from sim.driver import Simulation
from sim.errors import SimError
from sim.hardware import GIB, Hardware, get_hardware, hardware_from_dict
from sim.host_tier import HICACHE_RATIO, HOST_RESERVE_BYTES, HostTierConfig
from sim.models import ModelShape, get_model


@dataclass(frozen=True)
class SimSettings:
    """The run's `sim:` block, with the run's `hardware:` block (the card's datasheet).
    `cost_model`: `roofline` (model shape + datasheet) or `table` (coefficients measured on
    a real engine, `cost_table` = the JSON file)."""

    hardware: Hardware = field(default_factory=lambda: get_hardware("h100-nvl"))
    cost_model: Literal["roofline", "table"] = "roofline"
    cost_table: str | None = None
    fast_decode: bool = True  # merge runs of identical decode steps (same results, faster)

    @staticmethod
    def from_dict(data: Mapping[str, Any], hardware: Mapping[str, Any]) -> SimSettings:
        """`data`: the `sim:` block; `hardware`: the `hardware:` block (conf/hardware)."""
        check_keys(SimSettings, {**data, "hardware": None}, "sim")
        if "hardware" in data:
            raise ConfigError("sim.hardware: the card is chosen with hardware=<name> "
                              "(conf/hardware), not under sim:")
        cfg = SimSettings(hardware_from_dict(hardware), **data)
        check_types(cfg, "sim")
        if cfg.cost_model not in ("roofline", "table"):
            raise ConfigError(f"sim.cost_model: unknown {cfg.cost_model!r}; known: "
                              "['roofline', 'table']")
        if cfg.cost_model == "table" and not cfg.cost_table:
            raise ConfigError("sim.cost_model=table needs sim.cost_table (a JSON file)")
        return cfg


def model_shape(model: ModelSettings) -> ModelShape:
    """The run's `model.shape` block, typed; a model given by name alone (programmatic use)
    takes the shape of its conf/model file."""
    if model.shape is not None:
        return ModelShape.from_dict(model.name, model.shape)
    try:
        return get_model(model.name)
    except SimError:
        raise SimError(f"model {model.name!r} has no transformer shape (no `shape:` block in "
                       f"conf/model/{model.name}.yaml), which the simulator needs for the "
                       "roofline cost model and to derive engine.kv_capacity_tokens or "
                       "engine.max_model_len: set those two and sim.cost_model=table with a "
                       "table fitted to this model (as validate_sim does)") from None


def engine_config(model: ModelSettings, engine: EngineSettings, hardware: Hardware
                  ) -> EngineConfig:
    """The simulated engine for `engine` settings, capacity derived when not given."""
    kv = engine.kv_capacity_tokens
    if kv is None:
        kv = kv_capacity_tokens(model_shape(model), hardware,
                                gpu_memory_utilization=engine.gpu_memory_utilization,
                                block_size=engine.block_size)
    return EngineConfig(kv // engine.block_size, engine,
                        max_model_len=(engine.max_model_len
                                       or model_shape(model).max_position_embeddings),
                        host_tier=host_tier_config(model, engine, hardware, kv))


def host_tier_config(model: ModelSettings, engine: EngineSettings, hardware: Hardware,
                     gpu_kv_tokens: int) -> HostTierConfig | None:
    """The engine's host KV tier, None if off: `host_kv_tokens` if set, else
    `host_kv_ratio` x the GPU KV pool (SGLang `HostKVCache.__init__`: hicache_size, else
    hicache_ratio x device pool), rounded down to whole blocks."""
    if not engine.host_tier:
        return None
    shape, hw = model_shape(model), hardware
    ratio = engine.host_kv_ratio if engine.host_kv_ratio is not None else HICACHE_RATIO
    tokens = (engine.host_kv_tokens if engine.host_kv_tokens is not None
              else int(gpu_kv_tokens * ratio))
    blocks = tokens // engine.block_size
    key = "host_kv_tokens" if engine.host_kv_tokens is not None else "host_kv_ratio"
    if blocks < 1:
        raise ConfigError(f"engine.{key}: a host KV tier of {tokens} tokens holds no block "
                          f"of {engine.block_size}")
    return HostTierConfig(num_blocks=blocks, write_policy=engine.host_kv_write_policy,
                          kv_bytes_per_token=shape.kv_bytes_per_token,
                          link_bytes_per_s=hw.host_link_achieved,
                          num_layers=shape.num_layers)


def check_host_memory(cfg: EngineConfig, num_workers: int, hardware: Hardware,
                      engine: EngineSettings) -> None:
    """All engines' host tiers must fit in the machine's DRAM less SGLang's 10 GB reserve
    (`HostKVCache.__init__`); the workers are taken to share one machine."""
    tier = cfg.host_tier
    if tier is None:
        return
    hw = hardware
    need = num_workers * tier.num_blocks * cfg.block_size * tier.kv_bytes_per_token
    have = hw.host_memory_bytes - HOST_RESERVE_BYTES
    if need > have:
        key = "host_kv_tokens" if engine.host_kv_tokens is not None else "host_kv_ratio"
        raise ConfigError(
            f"engine.{key}: host KV tiers of {num_workers} x {tier.num_blocks * cfg.block_size}"
            f" tokens need {need / GIB:.1f} GiB of host memory, but {hw.name} has "
            f"{hw.host_memory_bytes / GIB:.0f} GiB (less a 10 GB reserve: "
            f"{have / GIB:.1f} GiB); lower engine.{key}")


def cost_model(model: ModelSettings, settings: SimSettings) -> CostModel:
    if settings.cost_model == "table":
        assert settings.cost_table is not None
        return FittedStepCost.load(settings.cost_table, model.name, settings.hardware.name)
    return RooflineCost(model_shape(model), settings.hardware)


def orchestration_costs(orch: Orchestration) -> tuple[ClientCost, ServerCost]:
    """The client program's and the API server's CPU costs that `orch` configures."""
    pool = (PoolCost(orch.client_keepalive_s, orch.client_pass_s, orch.client_pass_conn_s,
                     orch.client_pass_idle_s, orch.client_pass_pair_s,
                     orch.client_answer_hops, orch.client_release_hop,
                     orch.client_request_hops)
            if orch.client_model == "event_loop" else None)
    return (ClientCost(orch.client_call_s, orch.client_prompt_token_s,
                       orch.client_output_token_s, concurrency=orch.client_concurrency,
                       pool=pool),
            ServerCost(orch.server_call_s, orch.server_prompt_token_s, orch.server_scope))


def open_session(model: ModelSettings, engine: EngineSettings, num_workers: int, *,
                 orchestration: Orchestration, sim: SimSettings,
                 tokenizer: Tokenizer | None = None) -> Simulation:
    """A simulation with `num_workers` identical engines (synthetic tokenizer by default)."""
    if num_workers < 1:
        raise ConfigError(f"num_workers must be >= 1, got {num_workers}")
    cfg = engine_config(model, engine, sim.hardware)
    check_host_memory(cfg, num_workers, sim.hardware, engine)
    client, server = orchestration_costs(orchestration)
    return Simulation([cfg] * num_workers, cost_model(model, sim), tokenizer=tokenizer,
                      submit_overhead_s=orchestration.submit_overhead_s,
                      fast_decode=sim.fast_decode, client=client, server=server)
