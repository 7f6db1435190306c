"""The exhaustive soft-schedule bound (experiments/soft_schedule_bound.py): its candidate
space, and that it lies between the exact optimum and Alg. 1 on a Table 5 instance."""

from __future__ import annotations

import math

from experiments.soft_schedule_bound import best_soft_schedule, ordered_stagings
from experiments.table5_optimality import NO_PASSES
from helium_lab.cost import TokenStepCost
from helium_lab.optimizer import optimize
from helium_lab.scheduling import PlanningContext, get_policy
from helium_lab.scheduling.evaluation import evaluate_schedule
from helium_lab.scheduling.exact import solve_exact
from helium_lab.scheduling.schedule import Partition, Schedule
from helium_lab.scheduling.tokensteps import CallInstance
from helium_lab.tokenizer import SyntheticTokenizer
from helium_lab.workflows import make_workload

TOK = SyntheticTokenizer()


def test_every_ordered_staging_once() -> None:
    for n in range(1, 5):
        ops = [f"op{i}" for i in range(n)]
        all_ = list(ordered_stagings(ops))
        assert len(all_) == len(set(all_)) == math.factorial(n) * 2 ** (n - 1)
        for stages in all_:
            assert sorted(op for st in stages for op in st) == ops and all(stages)
    # the two extremes are in: op by op, and one stage (query by query)
    got = set(ordered_stagings(["a", "b", "c"]))
    assert (("a",), ("b",), ("c",)) in got and (("c", "a", "b"),) in got


def test_bound_lies_between_the_optimum_and_alg1() -> None:
    plan = optimize(make_workload("debate", batch_size=2, agents=2, rounds=2), NO_PASSES,
                    tokenizer=TOK)
    inst = CallInstance.from_plan(plan, TOK)
    cost = TokenStepCost.uniform(1, 8192)
    alg1 = get_policy("helium_alg1")(PlanningContext(plan, TOK, cost))
    alg1_steps = evaluate_schedule(alg1, inst, cost).makespan
    bound = best_soft_schedule(inst, cost)
    optimum = solve_exact(inst, cost, 1, time_limit_s=60)
    assert optimum.status == "optimal"
    assert optimum.makespan <= bound.token_steps + 1e-6 <= alg1_steps + 2e-6
    assert bound.candidates == math.factorial(4) * 2 ** 3 >= bound.distinct_orders
    # the bound's stages, handed to the planner's own evaluation, cost what it says
    best = Schedule("soft_bound", Partition.even(1, plan.size), (bound.stages,))
    assert evaluate_schedule(best, inst, cost).makespan == bound.token_steps
