"""validate_sim's parts that need no engine: the cost table over a run's own steps, the
median run, and settings refused before any engine starts."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import sim
from experiments.validate_sim import run as run_validation
from experiments.validation_runs import RealRun, median_run, step_cost_ratio
from helium_lab.errors import ConfigError
from runtime.engine import StepShape


def _step(dt: float, prefills: tuple[tuple[int, int], ...], decodes: tuple[int, ...]
          ) -> StepShape:
    return StepShape(0.0, dt, prefills, decodes, len(prefills) + len(decodes), 0, 0.0)


def test_step_cost_ratio_is_the_tables_time_over_the_measured_time() -> None:
    # step = 1 ms + 1 us per token + 10 us per sequence (no attention or context terms)
    cost = sim.FittedStepCost(1e-3, 1e-6, 1e-5, 0.0, 0.0)
    steps = (_step(0.002, ((100, 0),), ()),          # 1 ms + 100 us + 10 us = 1.11 ms
             _step(0.003, (), (50, 60, 70)))         # 1 ms + 3 us + 30 us = 1.033 ms
    assert step_cost_ratio(steps, cost) == pytest.approx((1.11e-3 + 1.033e-3) / 0.005)
    assert step_cost_ratio((), cost) is None


def test_median_run_is_the_lower_middle() -> None:
    def run(makespan: float) -> RealRun:
        result: Any = SimpleNamespace(makespan=makespan)
        recorder: Any = None
        return RealRun(result, recorder, ())

    runs = [run(3.0), run(1.0), run(2.0), run(4.0)]
    assert median_run(runs).result.makespan == 2.0
    assert median_run(runs[:3]).result.makespan == 2.0


@pytest.mark.parametrize(("validate", "match"), [
    ({"workflows": {"debate": None, "reflect": None}}, "validate_sim.workflows: every"),
    ({"real_repeats": 0}, "validate_sim.real_repeats must be >= 1"),
    ({"host_cores": 0}, "validate_sim.host_cores must be a core count"),
    ({"host_cores": "two"}, "validate_sim.host_cores must be a core count"),
    ({"server_engine_threads": 0}, "validate_sim.server_engine_threads must be"),
])
def test_bad_settings_fail_before_calibrating(tmp_path: Path, validate: dict[str, Any],
                                              match: str) -> None:
    cfg = {"model": {"name": "tiny"}, "num_workers": 1, "batch_size": 2, "seed": 0,
           "validate_sim": {"cost_table": None, **validate}}
    with pytest.raises(ConfigError, match=match):
        run_validation(cfg, tmp_path)
    assert not (tmp_path / "cost_table.json").exists()  # no engine ran
