"""PartitionWorkflow (scheduling/partition.py): `planner.partition` picks the reference's
even slices (default) or our LPT split by per-query usage."""

from __future__ import annotations

import dataclasses

import pytest

from helium_lab.config import PlannerSettings
from helium_lab.cost import TokenStepCost
from helium_lab.errors import ConfigError
from helium_lab.optimizer import OptimizerConfig, optimize
from helium_lab.scheduling import PlanningContext
from helium_lab.scheduling.partition import partition_workflow
from helium_lab.scheduling.schedule import Partition
from helium_lab.tokenizer import SyntheticTokenizer
from helium_lab.workflows import make_workload

TOK = SyntheticTokenizer()


def _ctx(batch: int, workers: int, partition: str) -> PlanningContext:
    plan = optimize(make_workload("reflect", batch_size=batch, critics=2, questions=1),
                    OptimizerConfig(), tokenizer=TOK)
    return PlanningContext(plan, TOK, TokenStepCost.uniform(workers), partition=partition)


def test_even_is_the_reference_split_and_lpt_balances_usage() -> None:
    even = partition_workflow(_ctx(9, 2, "even"))
    assert even == Partition.even(2, 9)
    assert even.query_worker == (0,) * 5 + (1,) * 4  # contiguous slices, q * W // B
    lpt = partition_workflow(_ctx(9, 2, "lpt"))
    assert set(lpt.query_worker) == {0, 1}
    assert lpt != even  # the contexts differ in length, so LPT's order is not the slices


def test_small_batches_are_placed_by_cost_in_both_modes() -> None:
    """Fewer than 2 queries per worker: even slices would idle a worker, so both modes
    cost the query split against placing whole inner groups."""
    a, b = (partition_workflow(_ctx(3, 2, mode)) for mode in ("even", "lpt"))
    assert a == b


def test_the_setting_is_checked() -> None:
    assert PlannerSettings().partition == "even"
    with pytest.raises(ConfigError, match=r"planner\.partition must be one of"):
        PlannerSettings.from_dict({"partition": "balanced"})
    assert dataclasses.replace(PlannerSettings(), partition="lpt").partition == "lpt"


def test_a_context_built_in_code_refuses_an_unknown_partition() -> None:
    with pytest.raises(ValueError, match=r"planner\.partition: unknown 'balanced'"):
        _ctx(4, 2, "balanced")
