"""validate_sim's parts that need no engine: the cost table over a run's own steps, the
median run, and settings refused before any engine starts."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import sim
from experiments.validate_sim import run as run_validation
from experiments.validation_runs import (
    RealRun,
    RunInputs,
    median_run,
    run_inputs,
    step_cost_ratio,
    with_client_cost,
)
from helium_lab.config import Orchestration, SystemConfig
from helium_lab.errors import ConfigError
from runtime.engine import StepShape
from sim.session import orchestration_costs


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


def _server_run(calls: int, client_s: float, per_server: list[tuple[float, float]]
                ) -> RealRun:
    """A client program's run: `calls` records, the client's CPU, and per server its engine
    core's and worker's CPU seconds."""
    stats = {w: {"client_cpu_s": client_s, "engine_core_cpu_s": core, "worker_cpu_s": work}
             for w, (core, work) in enumerate(per_server)}
    result: Any = SimpleNamespace(records=[None] * calls, stats=stats)
    recorder: Any = None
    return RealRun(result, recorder, ())


def test_run_inputs_are_medians_of_each_runs_measurements() -> None:
    # per run: client CPU / calls, and 1 + engine core CPU / worker CPU over both servers
    runs = [_server_run(100, 2.0, [(1.0, 2.0), (1.0, 2.0)]),    # 20 ms, 1.5
            _server_run(100, 1.0, [(0.5, 4.0), (0.5, 4.0)]),    # 10 ms, 1.125
            _server_run(100, 3.0, [(3.0, 3.0), (0.0, 3.0)])]    # 30 ms, 1.5
    assert run_inputs(runs) == pytest.approx(RunInputs(0.02, 1.5))
    # in-process runs (no client CPU) and servers whose worker was not found: none
    inproc: Any = SimpleNamespace(records=[None], stats={0: {"num_steps": 3.0}})
    assert run_inputs([RealRun(inproc, None, ())]) is None  # type: ignore[arg-type]
    assert run_inputs([_server_run(10, 1.0, [(1.0, 0.0)])]) is None


def test_with_client_cost_makes_the_client_flat() -> None:
    system = SystemConfig.from_dict({"name": "lg", "orchestration": {
        "client_call_s": 0.005, "client_prompt_token_s": 1e-7,
        "client_concurrency": [[100, 0.014]], "server_call_s": 0.002}})
    orch = Orchestration.from_dict(with_client_cost(system, 0.02).orchestration)
    assert (orch.client_call_s, orch.client_prompt_token_s, orch.client_concurrency) == (
        0.005, 0.0, ((2.0, 0.02),))
    assert orch.server_call_s == 0.002  # the server's costs as configured
    client, _ = orchestration_costs(orch)
    # the request keeps the configured send side; a call costs 0.02 from 2 calls in flight
    assert client.request_s(10_000) == pytest.approx(0.0025)
    assert client.request_s(0) + client.response_s(10_000, 500) == pytest.approx(0.02)
    cheaper = Orchestration.from_dict(with_client_cost(system, 0.004).orchestration)
    assert (cheaper.client_call_s, cheaper.client_concurrency) == (0.004, ((2.0, 0.004),))


@pytest.mark.parametrize(("validate", "match"), [
    ({"workflows": {"debate": None, "reflect": None}}, "validate_sim.workflows: every"),
    ({"real_repeats": 0}, "validate_sim.real_repeats must be >= 1"),
    ({"host_cores": 0}, "validate_sim.host_cores must be a core count"),
    ({"host_cores": "two"}, "validate_sim.host_cores must be a core count"),
    ({"server_engine_threads": 0}, "validate_sim.server_engine_threads must be"),
    ({"server_engine_threads": 0.9}, "validate_sim.server_engine_threads must be"),
    ({"server_engine_threads": True}, "validate_sim.server_engine_threads must be"),
])
def test_bad_settings_fail_before_calibrating(tmp_path: Path, validate: dict[str, Any],
                                              match: str) -> None:
    cfg = {"model": {"name": "tiny"}, "num_workers": 1, "batch_size": 2, "seed": 0,
           "validate_sim": {"cost_table": None, **validate}}
    with pytest.raises(ConfigError, match=match):
        run_validation(cfg, tmp_path)
    assert not (tmp_path / "cost_table.json").exists()  # no engine ran
