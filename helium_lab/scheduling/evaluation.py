"""A schedule's total token steps T(σ) (Eq. 5) under its own dispatch discipline."""

from __future__ import annotations

from helium_lab.cost import TokenStepCost
from helium_lab.scheduling.dispatch import dispatch_rule
from helium_lab.scheduling.schedule import Schedule
from helium_lab.scheduling.tokensteps import CallInstance, Evaluation


def evaluate_schedule(schedule: Schedule, inst: CallInstance, cost: TokenStepCost) -> Evaluation:
    """Call-level orders the schedule induces, and their token steps.

    The schedule's dispatch rule (`helium_lab.scheduling.dispatch`) decides the orders.
    """
    assign = [schedule.partition.worker_of(op, q) for op, q in inst.keys]
    rank = [schedule.rank(op, q) for op, q in inst.keys]
    return dispatch_rule(schedule.dispatch).evaluate(schedule, inst, cost, assign, rank)
