"""Every setting is honoured or refused: a value of the wrong type or range, or one a task
would silently ignore, fails before the run with a message naming the key (issue 15's
cases, one row each)."""

from __future__ import annotations

from pathlib import Path

import pytest

from experiments.cli import run_task
from experiments.compose import compose_once
from helium_lab.errors import HeliumError

DEBATE = ["+experiment=debate", "batch_size=2", "progress=false", "backend=echo"]

# (overrides, the key the message must name)
REFUSED = [
    (["engine.enable_prefix_caching=no"], "engine.enable_prefix_caching must be true or false"),
    (["engine.enable_prefix_caching=1"], "engine.enable_prefix_caching must be true or false"),
    (["sim.fast_decode=abc", "backend=sim"], "sim.fast_decode must be true or false"),
    (["batch_size=true"], "batch_size must be an integer"),
    (["engine.max_num_seqs=2.5"], "engine.max_num_seqs must be an integer"),
    (["engine.max_model_len=0"], r"engine.max_model_len must be >= 1"),
    (["engine.block_size=abc"], "engine.block_size must be an integer"),
    (["seed=1.7"], "seed must be an integer"),
    (["seed=abc"], "seed must be an integer"),
    (["seed=-1"], "seed must be >= 0"),
    (["max_output_tokens=-1"], "max_output_tokens must be >= 1"),
    (["max_output_tokens=abc"], "max_output_tokens must be an integer"),
    (["planner.static_prefix_min_tokens=-5"], "planner.static_prefix_min_tokens must be >= 1"),
    (["planner.prompt_cache_capacity=0"], "planner.prompt_cache_capacity must be >= 1"),
    (["planner.token_step_capacity=0"], "planner.token_step_capacity must be >= 1"),
    (["planner.alpha=half"], "planner.alpha must be one of"),
    (["system.prewarm=yes"], "system.prewarm must be true or false"),
    (["system.max_inflight_total=0"], "system.max_inflight_total must be >= 1"),
    (["system.orchestration.submit_overhead_s=-1"], "submit_overhead_s must be a number >= 0"),
    (["progress=maybe"], "progress must be true or false"),
    (["+hardware.foo=1", "backend=sim"], r"hardware: unknown key\(s\) \['foo'\]"),
    (["hardware.memory_mib=0", "backend=sim"], "hardware.memory_mib must be a positive"),
    (["+batch_sise=4"], r"unknown top-level config key\(s\) \['batch_sise'\]"),
]


@pytest.mark.parametrize(("overrides", "message"), REFUSED,
                         ids=[" ".join(o) for o, _ in REFUSED])
def test_bad_value_is_refused_naming_its_key(overrides: list[str], message: str,
                                             tmp_path: Path) -> None:
    cfg = compose_once([*DEBATE, *overrides])
    with pytest.raises(HeliumError, match=message):
        run_task(cfg, tmp_path)
    assert not (tmp_path / "summary.json").exists()


@pytest.mark.parametrize(("task_overrides", "message"), [
    (["+experiment=table5_optimality", "num_workers=2"], "num_workers=2: task"),
    (["+experiment=table5_optimality", "table5.milp_time_limit_s=-1"],
     "table5.milp_time_limit_s must be a number of seconds > 0"),
    (["+experiment=planner_overhead", "system=langgraph"], "system.name='langgraph': task"),
    (["+experiment=planner_overhead", "backend=vllm"], "backend='vllm': task"),
])
def test_a_setting_a_task_ignores_is_refused(task_overrides: list[str], message: str,
                                             tmp_path: Path) -> None:
    cfg = compose_once([*task_overrides, "progress=false"])
    with pytest.raises(HeliumError, match=message):
        run_task(cfg, tmp_path)


def test_max_output_tokens_is_honoured_on_the_simulator(tmp_path: Path) -> None:
    import json

    cfg = compose_once([*DEBATE, "backend=sim", "max_output_tokens=8"])
    run_task(cfg, tmp_path)
    calls = [json.loads(x) for x in (tmp_path / "calls.jsonl").read_text().splitlines()]
    assert calls and max(c["output_tokens"] for c in calls) == 8


def test_a_model_without_a_shape_on_the_simulator_says_what_to_do(tmp_path: Path) -> None:
    cfg = compose_once([*DEBATE, "backend=sim", "model=tiny"])
    with pytest.raises(HeliumError, match=r"model 'tiny' has no transformer shape.*"
                                          r"sim.cost_model=table"):
        run_task(cfg, tmp_path)
