"""Experiment definitions: one per paper figure/table, each a task of `helium_lab.run`.

A task is `fn(cfg: dict, run_dir: Path) -> summary dict`; it may write more files into
`run_dir` (atomically; every name listed in `experiments.run_folder.RUN_FILES`, so that a
re-run into the same folder removes it first) and prints a readable summary. A task that
reads a top-level config block of its own (e.g. `table5:`) names it in `TASK_KEYS`; any other
top-level key that `conf/config.yaml` does not define is refused (`helium_lab.run`).
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from pathlib import Path
from typing import Any

from helium_lab.errors import ConfigError

Task = Callable[[dict[str, Any], Path], dict[str, Any]]

TASKS: dict[str, str] = {
    "table5_optimality": "experiments.table5_optimality:run",
    "planner_overhead": "experiments.planner_overhead:run",
    "workflow": "experiments.workflow_run:run",
    "validate_sim": "experiments.validate_sim:run",
}

# Top-level config blocks a task reads besides those of conf/config.yaml.
TASK_KEYS: dict[str, tuple[str, ...]] = {
    "table5_optimality": ("table5",),
    "planner_overhead": ("planner_overhead",),
    "validate_sim": ("validate_sim",),
}


# Keys a task does not read, with the one value it runs as: any other value is refused
# (a setting that would silently do nothing). Dotted keys reach into blocks.
TASK_FIXED: dict[str, dict[str, Any]] = {
    "table5_optimality": {"num_workers": 1, "backend": "sim"},  # one-worker instances
    "planner_overhead": {"system.name": "helium", "backend": "sim"},  # Helium's planner
}


def check_fixed_keys(task: str, cfg: dict[str, Any]) -> None:
    """Refuse a value of a key `task` does not read (see `TASK_FIXED`)."""
    for key, fixed in TASK_FIXED.get(task, {}).items():
        value: Any = cfg
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if value != fixed:
            raise ConfigError(f"{key}={value!r}: task {task!r} does not use {key} (it always "
                              f"runs as {key}={fixed!r}); leave it at that")


def get_task(name: str) -> Task:
    target = TASKS.get(name)
    if target is None:
        raise ConfigError(f"unknown task {name!r} (config key 'task'); known: {sorted(TASKS)}")
    module, fn = target.split(":")
    task: Task = getattr(import_module(module), fn)
    return task
