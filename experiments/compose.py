"""The run configuration as `helium_lab.run` composes it, for code that is not a Hydra app.

Benchmarks, tests and the paper-figure sweep need the very config a command line would give
(`conf/config.yaml`, a system with what it inherits, a model, an experiment, overrides), not
a yaml file read on its own: a system file holds only its differences from
`conf/system/base.yaml`, and its engine knobs live in the top-level `engine:` block.

    with composer() as compose:
        cfg = compose(["+experiment=debate", "system=langgraph"])

`compose` returns the resolved config as plain dicts; a bad override raises `ConfigError`
naming it. Inside a running Hydra app (`helium_lab.run`: validate_sim composing the systems
it validates) a composer reuses the app's Hydra, whose search path is this same `conf/`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from helium_lab.config import EngineSettings, Orchestration, SystemConfig
from helium_lab.errors import ConfigError

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"

Compose = Callable[[Sequence[str]], dict[str, Any]]


@contextmanager
def composer(config_dir: Path = CONF_DIR) -> Iterator[Compose]:
    """A function from command-line overrides to the resolved config (see module doc)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException

    def compose(overrides: Sequence[str]) -> dict[str, Any]:
        try:
            cfg = hydra_compose("config", overrides=list(overrides))
        except HydraException as e:
            raise ConfigError(f"overrides {list(overrides)} do not compose: {e}") from None
        data = OmegaConf.to_container(cfg, resolve=True)
        assert isinstance(data, dict)
        return {str(k): v for k, v in data.items()}

    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():  # inside a running app (see module doc)
        yield compose
        return
    with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
        yield compose


def compose_once(overrides: Sequence[str] = ()) -> dict[str, Any]:
    """One resolved config (opens and closes a composer)."""
    with composer() as compose:
        return compose(overrides)


def system_settings(name: str, overrides: Sequence[str] = ()
                    ) -> tuple[SystemConfig, EngineSettings, Orchestration]:
    """System `name` as a run would see it: its config, the engine knobs it leaves the run
    with, and its orchestration, with `overrides` applied after it."""
    cfg = compose_once([f"system={name}", *overrides])
    system = SystemConfig.from_dict(cfg["system"])
    return (system, EngineSettings.from_dict(cfg["engine"]),
            Orchestration.from_dict(system.orchestration))
