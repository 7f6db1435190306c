"""Experiment definitions: one per paper figure/table, each a task of `helium_lab.run`.

A task is `fn(cfg: dict, run_dir: Path) -> summary dict`; it may write more files into
`run_dir` (atomically) and prints a readable summary.
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


def get_task(name: str) -> Task:
    target = TASKS.get(name)
    if target is None:
        raise ConfigError(f"unknown task {name!r} (config key 'task'); known: {sorted(TASKS)}")
    module, fn = target.split(":")
    task: Task = getattr(import_module(module), fn)
    return task
