"""Planning end to end: optimize, build the TRT, schedule — timed, for any system."""

from __future__ import annotations

import time
from dataclasses import dataclass

from helium_lab.config import PlannerSettings, SystemConfig
from helium_lab.cost import TokenStepCost
from helium_lab.dsl.graph import BoundGraph
from helium_lab.optimizer import PromptCache, optimize
from helium_lab.plan import Plan
from helium_lab.scheduling import PlanningContext, Schedule, get_policy
from helium_lab.tokenizer import Tokenizer


@dataclass(frozen=True)
class Planned:
    plan: Plan
    schedule: Schedule
    optimizer_s: float
    scheduler_s: float

    @property
    def planning_s(self) -> float:
        return self.optimizer_s + self.scheduler_s


def plan_batch(bound: BoundGraph, system: SystemConfig, settings: PlannerSettings,
               num_workers: int, tokenizer: Tokenizer, *, cache: PromptCache | None = None,
               namespace: str = "default", seed: int = 0) -> Planned:
    """Run the system's optimizer passes and scheduling policy on one batch."""
    t0 = time.perf_counter()
    plan = optimize(bound, system.optimizer(settings.static_prefix_min_tokens), cache=cache,
                    namespace=namespace, tokenizer=tokenizer)
    t1 = time.perf_counter()
    cost = TokenStepCost.uniform(num_workers, settings.token_step_capacity, settings.alpha)
    ctx = PlanningContext(plan, tokenizer, cost, seed, settings.refine_max_evaluations,
                          settings.partition)
    schedule = get_policy(system.policy)(ctx)
    t2 = time.perf_counter()
    return Planned(plan, schedule, t1 - t0, t2 - t1)
