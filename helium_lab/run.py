"""Entry point: `python -m helium_lab.run +experiment=<name> [key=value ...]`.

Builds typed configs once, runs the configured task (see `experiments.TASKS`), and writes
the run folder: `config.yaml` (resolved) and `summary.json` (keys documented in README.md).
Bad configuration exits with status 2 and a message naming the key.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from helium_lab.errors import HeliumError
from helium_lab.io import atomic_write_json, atomic_write_text


def run_task(cfg: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    from experiments import get_task

    task = get_task(str(cfg.get("task")))
    t0 = time.perf_counter()
    summary = task(cfg, run_dir)
    summary.setdefault("task", cfg.get("task"))
    summary.setdefault("run_wall_s", round(time.perf_counter() - t0, 3))
    return summary


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> None:
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        resolved: dict[str, Any] = OmegaConf.to_container(cfg, resolve=True)  # type: ignore[assignment]
        atomic_write_text(run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
        summary = run_task(resolved, run_dir)
    except HeliumError as e:
        print(f"error: {e}", file=sys.stderr)
        atomic_write_json(run_dir / "summary.json", {"status": "failed", "error": str(e)})
        sys.exit(2)
    summary.setdefault("status", "ok")
    atomic_write_json(run_dir / "summary.json", summary)
    print(f"run folder: {run_dir}")


if __name__ == "__main__":
    main()
