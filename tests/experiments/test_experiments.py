"""Every experiment preset composes and runs (scaled down); the CLI writes its run folder."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from experiments.cli import run_task

CONF = str(Path(__file__).resolve().parents[2] / "conf")
EXPERIMENTS = sorted(p.stem for p in (Path(CONF) / "experiment").glob("*.yaml"))


def config(experiment: str, *overrides: str) -> dict:
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose("config", overrides=[f"+experiment={experiment}", "progress=false",
                                           *overrides])
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_preset_composes(experiment: str) -> None:
    cfg = config(experiment)
    assert cfg["task"] and cfg["system"]["name"]


def test_table5_small(tmp_path: Path) -> None:
    cfg = config("table5_optimality")
    cfg["table5"]["instances"] = cfg["table5"]["instances"][:2]
    cfg["table5"]["milp_time_limit_s"] = 20
    summary = run_task(cfg, tmp_path)
    for m in cfg["table5"]["methods"]:
        row = summary["methods"][m]
        assert row["gap_max_pct"] >= row["gap_avg_pct"] >= -1e-9
        assert row["token_steps_avg"] > 0
    assert summary["instances"][0]["milp_status"] in ("optimal", "time_limit")
    # the optimum is a lower bound of every method when proven
    for inst in summary["instances"]:
        if inst["milp_status"] == "optimal":
            assert min(inst["token_steps"].values()) >= inst["milp_token_steps"] * (1 - 1e-9)


def test_planner_overhead_small(tmp_path: Path) -> None:
    cfg = config("planner_overhead", "planner_overhead.branches=[4]",
                 "planner_overhead.repeats=1", "planner_overhead.scaling_batch=32")
    summary = run_task(cfg, tmp_path)
    row = summary["branches"]["4"]
    assert row["llm_ops"] == 56 and row["metadata_bytes"] > 0
    assert row["planning_ms_median"] > 0 and summary["batch_scaling_ratio"] > 0


def test_cli_writes_run_folder_and_reports_bad_keys(tmp_path: Path) -> None:
    out = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "helium_lab.run", "+experiment=debate",
                           "backend=echo", "batch_size=2", "progress=false",
                           f"hydra.run.dir={out}"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["num_llm_calls"] == 12 and summary["status"] == "ok"
    assert (out / "config.yaml").exists()
    assert len((out / "outputs.jsonl").read_text().splitlines()) == 2
    bad = subprocess.run([sys.executable, "-m", "helium_lab.run", "+experiment=debate",
                          "backend=echo", "system.policy=fastest",
                          f"hydra.run.dir={tmp_path / 'bad'}"], capture_output=True, text=True,
                         timeout=120)
    assert bad.returncode == 2 and "unknown policy 'fastest'" in bad.stderr
