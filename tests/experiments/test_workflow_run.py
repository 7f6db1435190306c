"""The main job on the simulator: presets run, the run folder is complete and reproducible,
bad input fails with a message naming the key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hydra.errors import MissingConfigException

from experiments.cli import run_task
from helium_lab.errors import HeliumError
from tests.experiments.test_experiments import EXPERIMENTS, config

WORKFLOW_PRESETS = [e for e in EXPERIMENTS if config(e)["task"] == "workflow"]
REQUIRED = ("system", "workflow", "backend", "batch_size", "num_workers", "makespan_s",
            "planning_s", "num_llm_calls", "prompt_tokens", "cached_prompt_tokens",
            "prefix_hit_rate", "output_tokens", "wall_s")
WALL_CLOCK = ("wall_s", "warmup_wall_s", "planning_s", "optimizer_s", "scheduler_s",
              "run_wall_s")


def test_the_paper_workflows_all_have_presets() -> None:
    assert set(WORKFLOW_PRESETS) >= {"mapred_mmlu", "mapred_tatqa", "debate", "debate_tatqa",
                                     "reflect", "iterative", "parallel", "trading"}


@pytest.mark.parametrize("experiment", WORKFLOW_PRESETS)
def test_preset_runs_on_the_simulator(experiment: str, tmp_path: Path) -> None:
    summary = run_task(config(experiment, "batch_size=2"), tmp_path)
    assert all(k in summary for k in REQUIRED)
    assert summary["backend"] == "sim" and summary["makespan_s"] > 0
    calls = [json.loads(line) for line in (tmp_path / "calls.jsonl").read_text().splitlines()]
    ids = [c["call_id"] for c in calls]
    assert len(ids) == len(set(ids)) == summary["num_llm_calls"] == summary["plan"]["num_calls"]
    for c in calls:  # every call ran once, in order, within the makespan
        assert 0 <= c["submit_t"] <= c["start_t"] <= c["first_token_t"] <= c["finish_t"]
        assert c["finish_t"] <= summary["makespan_s"] + 1e-9
        assert 0 <= c["cached_tokens"] < c["prompt_tokens"]
    assert summary["cached_prompt_tokens"] == sum(c["cached_tokens"] for c in calls)
    assert len((tmp_path / "outputs.jsonl").read_text().splitlines()) == 2
    header = (tmp_path / "timeseries.csv").read_text().splitlines()[0]
    assert header == "worker,t,dt,steps,running,waiting,batched_tokens,kv_usage"


@pytest.mark.parametrize("system", ["helium", "langgraph"])
def test_same_config_and_seed_give_identical_results(system: str, tmp_path: Path) -> None:
    cfg = config("trading", f"system={system}", "batch_size=3", "workflow_params.branches=2")
    a = run_task(cfg, tmp_path / "a")
    b = run_task(cfg, tmp_path / "b")
    for key in WALL_CLOCK:
        a.pop(key, None)
        b.pop(key, None)
    assert a == b
    for name in ("calls.jsonl", "outputs.jsonl", "timeseries.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_final_outputs_do_not_depend_on_the_system(tmp_path: Path) -> None:
    outs = {}
    for system in ("helium", "querywise", "opwise", "langgraph", "agentscope", "parrot",
                   "kvflow", "vllm"):
        run_task(config("trading", f"system={system}", "batch_size=2",
                        "workflow_params.branches=2"), tmp_path / system)
        outs[system] = (tmp_path / system / "outputs.jsonl").read_text()
    assert len(set(outs.values())) == 1


@pytest.mark.parametrize(("group", "name"), [("system", "fastest"), ("model", "gpt-9"),
                                             ("hardware", "tpu-v9")])
def test_unknown_names_are_reported(group: str, name: str) -> None:
    with pytest.raises(MissingConfigException, match=f"{group}/{name}"):
        config("debate", f"{group}={name}")


def test_unknown_experiment_is_reported() -> None:
    with pytest.raises(MissingConfigException, match="experiment/nope"):
        config("nope")


def test_kv_capacity_too_small_for_a_prompt(tmp_path: Path) -> None:
    cfg = config("debate", "batch_size=2", "engine.kv_capacity_tokens=256")
    with pytest.raises(HeliumError, match=r"engine\.kv_capacity_tokens"):
        run_task(cfg, tmp_path)
    assert not (tmp_path / "summary.json").exists()


def test_max_tokens_beyond_model_length(tmp_path: Path) -> None:
    cfg = config("debate", "batch_size=2", "engine.max_model_len=300")
    with pytest.raises(HeliumError, match=r"engine\.max_model_len"):
        run_task(cfg, tmp_path)


@pytest.mark.parametrize(("override", "key"), [("engine.queue_order=lifo", "queue_order"),
                                               ("engine.blocksize=8", "blocksize"),
                                               ("sim.cost_model=guess", "sim.cost_model"),
                                               ("backend=tpu", "backend"),
                                               ("batch_size=0", "batch_size")])
def test_bad_keys_name_themselves(override: str, key: str, tmp_path: Path) -> None:
    cfg = config("debate", "batch_size=2")
    section, _, rest = override.partition("=")[0].partition(".")
    value = override.partition("=")[2]
    if rest:
        cfg[section][rest] = value
    else:
        cfg[section] = int(value) if value.isdigit() else value
    with pytest.raises(HeliumError, match=key):
        run_task(cfg, tmp_path)
