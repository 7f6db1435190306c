"""One simulated engine: the run's engine settings plus what an engine derives from them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from helium_lab.config import EngineSettings
from sim.errors import SimError
from sim.host_tier import HostTierConfig

HARD_PIN_FRACTION = 0.5  # runtime/pins.py: pins hold at most this share of the KV blocks


@dataclass(frozen=True)
class EngineConfig:
    """One simulated engine: `settings`, the knobs both backends share
    (`helium_lab.config.EngineSettings`), and what vLLM (or SGLang) derives from them
    and the hardware at start-up, which the simulator must be told:

    - `num_gpu_blocks`: the KV cache in blocks of `settings.block_size`, counting vLLM's
      reserved null block (so `num_gpu_blocks - 1` are usable; vLLM logs
      `num_gpu_blocks * block_size` as its capacity). `sim.session.engine_config` derives
      it from `settings.kv_capacity_tokens`, or from the model and hardware memory.
    - `max_model_len`: the context limit (`settings.max_model_len`, else the model's).
    - `host_tier`: the sized host KV level (sim/host_tier.py) when `settings` asks for
      one, else None. With a tier given, `settings.host_kv_load` and
      `settings.host_kv_prefetch_steps` say how it loads (sim/host_loads.py); without
      one, `settings` must not ask for one (`settings.host_tier` says whether it does).

    `EngineConfig.of(num_gpu_blocks, **knobs)` builds one from `EngineSettings` keywords
    (tests and replays)."""

    num_gpu_blocks: int
    settings: EngineSettings = field(default_factory=EngineSettings)
    max_model_len: int = 40_960
    host_tier: HostTierConfig | None = None

    def __post_init__(self) -> None:
        if self.num_gpu_blocks < 2:
            raise SimError(f"EngineConfig: KV cache of {self.num_gpu_blocks} blocks is too "
                           "small (one block is vLLM's null block)")
        if self.max_model_len <= 0:
            raise SimError(f"EngineConfig: max_model_len must be positive, got "
                           f"{self.max_model_len}")
        if (self.host_tier is not None) != self.settings.host_tier:
            raise SimError("EngineConfig: host_tier must be given exactly when the settings "
                           "ask for one (engine.host_kv_tokens or engine.host_kv_ratio), got "
                           f"host_tier={self.host_tier} with engine.host_kv_tokens="
                           f"{self.settings.host_kv_tokens}, engine.host_kv_ratio="
                           f"{self.settings.host_kv_ratio}")

    @staticmethod
    def of(num_gpu_blocks: int, *, max_model_len: int = 40_960,
           host_tier: HostTierConfig | None = None, **knobs: Any) -> EngineConfig:
        """An engine of `num_gpu_blocks` with `EngineSettings(**knobs)`; a host tier given
        here counts as configured (`knobs` need not size it)."""
        if host_tier is not None and "host_kv_tokens" not in knobs:
            knobs.setdefault("host_kv_ratio", 1.0)  # the tier is sized by `host_tier`
        return EngineConfig(num_gpu_blocks, EngineSettings(**knobs), max_model_len, host_tier)

    @property
    def block_size(self) -> int:
        return self.settings.block_size
