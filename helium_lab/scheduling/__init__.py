"""Scheduling policies: small named strategies that turn a plan into a soft schedule.

A new policy is a function `PlanningContext -> Schedule` plus an entry in `POLICIES`.
"""

from __future__ import annotations

from collections.abc import Callable

from helium_lab.errors import ConfigError
from helium_lab.scheduling.baselines import (
    in_order,
    lspf,
    opwise,
    opwise_pipeline,
    querywise,
    random_order,
)
from helium_lab.scheduling.context import PlanningContext
from helium_lab.scheduling.helium import alg1_schedule, helium_schedule
from helium_lab.scheduling.schedule import Partition, Schedule

Policy = Callable[[PlanningContext], Schedule]

POLICIES: dict[str, Policy] = {
    "helium": helium_schedule,
    "helium_alg1": alg1_schedule,
    "querywise": querywise,
    "opwise": opwise,
    "opwise_pipeline": opwise_pipeline,
    "random": random_order,
    "in_order": in_order,
    "lspf": lspf,
}


def get_policy(name: str) -> Policy:
    try:
        return POLICIES[name]
    except KeyError:
        raise ConfigError(f"unknown scheduling policy {name!r}; known: {sorted(POLICIES)}"
                          ) from None


__all__ = ["POLICIES", "Partition", "PlanningContext", "Policy", "Schedule", "get_policy"]
