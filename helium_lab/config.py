"""Typed, frozen configs built once from Hydra's DictConfig at the top of a run.

Library code takes these, never a DictConfig. Unknown keys are errors that name the key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from helium_lab.errors import ConfigError
from helium_lab.optimizer import OptimizerConfig
from helium_lab.processor.config import ProcessorConfig
from helium_lab.scheduling import POLICIES


def _check_keys(cls: type, data: Mapping[str, Any], where: str) -> None:
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; known: {sorted(known)}")


@dataclass(frozen=True)
class SystemConfig:
    """A system of the paper as a bundle of choices (DESIGN.md "systems are configs").

    `engine` and `orchestration` hold backend-level knobs (queue order, prefix caching,
    per-call client overheads) that the planner passes through untouched.
    """

    name: str
    passes: tuple[str, ...] = ("prune", "cse", "prompt_cache", "static_prefix")
    policy: str = "helium"
    router: str = "schedule"
    prewarm: bool = True
    max_inflight_per_worker: int = 1024
    max_inflight_total: int | None = None
    max_inflight_per_op: int | None = None
    engine: Mapping[str, Any] = field(default_factory=dict)
    orchestration: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""

    @staticmethod
    def from_dict(data: Mapping[str, Any]) -> SystemConfig:
        _check_keys(SystemConfig, data, f"system {data.get('name', '?')!r}")
        if "name" not in data:
            raise ConfigError("system config has no 'name'")
        d = dict(data)
        d["passes"] = tuple(d.get("passes") or ())
        cfg = SystemConfig(**d)
        if cfg.policy not in POLICIES:
            raise ConfigError(f"system {cfg.name!r}: unknown policy {cfg.policy!r}; known: "
                              f"{sorted(POLICIES)}")
        OptimizerConfig.from_passes(cfg.passes)  # validates pass names
        return cfg

    def optimizer(self, static_prefix_min_tokens: int) -> OptimizerConfig:
        return OptimizerConfig.from_passes(self.passes, static_prefix_min_tokens)

    def processor(self, namespace: str) -> ProcessorConfig:
        return ProcessorConfig(self.router, self.max_inflight_per_worker,
                               self.max_inflight_total, self.max_inflight_per_op,
                               self.prewarm and "static_prefix" in self.passes, namespace)


@dataclass(frozen=True)
class PlannerSettings:
    static_prefix_min_tokens: int = 200
    prompt_cache_capacity: int = 100_000
    prompt_cache_path: str | None = None
    token_step_capacity: int = 8192
    alpha: Literal["unit", "inverse_capacity"] = "unit"

    @staticmethod
    def from_dict(data: Mapping[str, Any]) -> PlannerSettings:
        _check_keys(PlannerSettings, data, "planner")
        return PlannerSettings(**data)
