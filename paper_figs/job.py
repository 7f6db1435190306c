"""Hydra entry point of one sweep job: `experiments.cli`'s main (what `helium_lab.run`
starts), unchanged, except that a job that fails (exit status 2 on bad configuration)
raises an ordinary exception, so the launcher records it as a failed job and the other
jobs of the sweep still run."""

from __future__ import annotations

from typing import Any

import hydra
from omegaconf import DictConfig


class RunFailed(RuntimeError):
    pass


@hydra.main(version_base="1.3", config_path=None, config_name=None)
def main(cfg: DictConfig) -> None:
    from experiments.cli import failed_jobs
    from experiments.cli import main as run_main

    body: Any = run_main.__wrapped__
    before = len(failed_jobs())
    try:
        body(cfg)
    except SystemExit as e:
        if e.code not in (0, None):
            raise RunFailed(f"run failed with exit status {e.code} "
                            "(see its summary.json)") from None
    failed = failed_jobs()[before:]
    if failed:  # a sweep's job records its failure and returns (experiments.cli)
        raise RunFailed(f"run failed with exit status {failed[-1][1]} (see its "
                        "summary.json)")


if __name__ == "__main__":
    main()
