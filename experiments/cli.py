"""The command line behind `python -m helium_lab.run +experiment=<name> [key=value ...]`.

Builds typed configs once, runs the configured task (see `experiments.TASKS`), and writes
the run folder: `config.yaml` (resolved) and `summary.json` (keys documented in README.md;
`status` is `running` while the run is in progress, then `ok` or `failed`). What a run
folder promises, and what happens on each kind of failure: docs/reliability.md.

Exit status: 0 ok; 2 bad configuration (ours or Hydra's: an unknown key, group option or
override), with a message naming the key; 1 any other error; 130 interrupted (SIGINT).
On SIGTERM or SIGHUP the run records `failed` and then dies by that signal (a shell shows
128 + N: 143, 129).
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException
from hydra.types import RunMode
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from helium_lab.errors import ConfigError, HeliumError
from helium_lab.io import atomic_write_text

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
# `${pid:}` in hydra.run.dir (conf/config.yaml): with the microseconds of `${now:}` it keeps
# two runs started in the same second apart, on one machine or several. Cached like `now`,
# so a multirun's launcher workers (other processes) resolve the master's sweep folder.
OmegaConf.register_new_resolver("pid", os.getpid, use_cache=True, replace=True)

_entered = False  # the run itself started (so an exit status 1 is not Hydra's config error)


def known_top_level_keys(task: str) -> set[str]:
    """Top-level keys a run of `task` may have: those of conf/config.yaml, its config
    groups (`system`, `model`, `hardware`) and the task's own blocks (`experiments.TASK_KEYS`)."""
    from experiments import TASK_KEYS

    base = OmegaConf.load(CONF_DIR / "config.yaml")
    assert isinstance(base, DictConfig)
    keys = {str(k) for k in base if k not in ("defaults", "hydra")}
    defaults = base.get("defaults")
    for entry in defaults if isinstance(defaults, ListConfig) else ():
        if isinstance(entry, DictConfig):
            keys.update(str(k).split()[-1].lstrip("/").split("/")[0] for k in entry)
    keys.update(TASK_KEYS.get(task, ()))
    return keys


def check_top_level_keys(cfg: dict[str, Any]) -> None:
    """Refuse keys no task reads (Hydra accepts any `+key=value`, e.g. a misspelt
    `+batch_sise=4`, and the run would silently ignore it)."""
    task = str(cfg.get("task"))
    known = known_top_level_keys(task)
    unknown = sorted(str(k) for k in set(cfg) - known)
    if unknown:
        raise ConfigError(f"unknown top-level config key(s) {unknown} (task {task!r}); "
                          f"known: {sorted(known)}")


def run_task(cfg: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    from experiments import check_fixed_keys, get_task

    task = get_task(str(cfg.get("task")))
    check_top_level_keys(cfg)
    check_fixed_keys(str(cfg.get("task")), cfg)
    t0 = time.perf_counter()
    summary = task(cfg, run_dir)
    summary.setdefault("task", cfg.get("task"))
    summary.setdefault("run_wall_s", round(time.perf_counter() - t0, 3))
    return summary


def _resolve(cfg: DictConfig) -> dict[str, Any]:
    try:
        resolved = OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as e:  # a bad interpolation, e.g. ${oc.env:UNSET}
        key = getattr(e, "full_key", None)
        msg = str(getattr(e, "msg", e)).splitlines()[0]
        raise ConfigError(f"config{f' key {key!r}' if key else ''} does not resolve: "
                          f"{msg}") from None
    assert isinstance(resolved, dict)
    return {str(k): v for k, v in resolved.items()}


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def main(cfg: DictConfig) -> None:
    from experiments.run_folder import RunFolder, Terminated, die_by, handle_signals

    global _entered
    _entered = True
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    sweeping = hydra_cfg.mode == RunMode.MULTIRUN  # a failed job must not end the sweep
    try:
        task: str | None = str(cfg.task)
    except OmegaConfBaseException:
        task = None  # reported by _resolve below
    folder = RunFolder(run_dir, task=task)
    with handle_signals():
        try:
            folder.start()  # refuses a live run's folder: nothing of it is touched then
        except HeliumError as e:
            print(f"error: {e}", file=sys.stderr)
            _job_failed(run_dir, 2, sweeping)
            return
        try:
            resolved = _resolve(cfg)
            atomic_write_text(run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
            summary = run_task(resolved, run_dir)
            folder.finish(summary)
        except HeliumError as e:
            folder.fail(e)
            print(f"error: {e}\nrun folder (failed): {run_dir}", file=sys.stderr)
            _job_failed(run_dir, 2, sweeping)
            return
        except Exception as e:
            folder.fail(e)
            if not sweeping:
                raise
            traceback.print_exc()
            print(f"run folder (failed): {run_dir}", file=sys.stderr)
            _job_failed(run_dir, 1, sweeping)
            return
        except BaseException as e:
            failed = folder.fail(e)
            if isinstance(e, (KeyboardInterrupt, Terminated)):
                print(f"{failed['error']}; run folder (failed): {run_dir}", file=sys.stderr)
            if isinstance(e, Terminated):
                die_by(e.signum)  # killed by the signal, as without our handler
            raise
    print(f"run folder: {run_dir}")


_hydra_error: list[BaseException] = []  # what Hydra's run_and_report last saw raised
_failed_jobs: list[tuple[Path, int]] = []  # this process's failed sweep jobs, exit status


def _job_failed(run_dir: Path, status: int, sweeping: bool) -> None:
    """A single run exits with `status`; a sweep's job is noted and the sweep goes on."""
    if not sweeping:
        sys.exit(status)
    _failed_jobs.append((run_dir, status))


def failed_jobs() -> list[tuple[Path, int]]:
    """Run folders of the sweep jobs that failed in this process so far, with the exit
    status each would have had alone (2 configuration, 1 other)."""
    return list(_failed_jobs)


def _is_config_error(e: BaseException) -> bool:
    return isinstance(e, (HydraException, OmegaConfBaseException, HeliumError))


@contextmanager
def _recording_hydra_errors() -> Iterator[bool]:
    """Hydra prints any exception it catches (a bad override, a missing group option, a
    task's own error) and exits with status 1; record which one it was. Yields whether the
    recording is in place (Hydra 1.3's `hydra._internal.utils.run_and_report`)."""
    import hydra._internal.utils as hydra_utils

    orig = getattr(hydra_utils, "run_and_report", None)
    if orig is None:
        yield False
        return

    def run_and_report(func: Callable[[], Any]) -> Any:
        def recorded() -> Any:
            try:
                return func()
            except Exception as e:
                _hydra_error.append(e)
                raise

        return orig(recorded)

    hydra_utils.run_and_report = run_and_report
    try:
        yield True
    finally:
        hydra_utils.run_and_report = orig


def cli() -> None:
    """`main` with every configuration error, Hydra's own included, as exit status 2.

    Hydra reports a bad command line (an unknown group option such as `system=fastest`, an
    override of a key that does not exist, a syntax error, a sweep value that does not
    compose) by printing its message and exiting with status 1, as it does for a task's
    own error (a bug: status 1 stays); a configuration error becomes 2 here."""
    _hydra_error.clear()
    _failed_jobs.clear()
    try:
        with _recording_hydra_errors() as recording:
            main()
        if _failed_jobs:  # a sweep ran every job; say which failed
            print(f"{len(_failed_jobs)} sweep job(s) failed:", file=sys.stderr)
            for run_dir, status in _failed_jobs:
                print(f"  {run_dir} (exit status {status} alone)", file=sys.stderr)
            raise SystemExit(2 if all(s == 2 for _, s in _failed_jobs) else 1)
    except SystemExit as e:
        config_error = (_is_config_error(_hydra_error[-1]) if _hydra_error
                        else not recording and not _entered)
        if e.code == 1 and config_error:
            print("(configuration error: exit status 2)", file=sys.stderr)
            raise SystemExit(2) from None
        raise
    except (HydraException, OmegaConfBaseException) as e:  # with HYDRA_FULL_ERROR=1
        traceback.print_exc()
        print(f"configuration error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None


if __name__ == "__main__":
    cli()
