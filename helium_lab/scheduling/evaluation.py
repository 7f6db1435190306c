"""A schedule's total token steps T(σ) (Eq. 5) under its own dispatch discipline."""

from __future__ import annotations

import random
from collections.abc import Sequence

from helium_lab.cost import TokenStepCost
from helium_lab.scheduling.schedule import Schedule
from helium_lab.scheduling.tokensteps import CallInstance, Evaluation, evaluate, list_schedule


def token_steps(schedule: Schedule, inst: CallInstance, cost: TokenStepCost) -> Evaluation:
    """Call-level orders the schedule induces, and their token steps.

    strict: calls in exact rank order per worker; best_effort: non-delay list scheduling by
    rank; random: by a seeded random priority; lspf: the ready call sharing the longest
    prefix with the worker's previous call (FCFS among equals).
    """
    workers = schedule.num_workers
    assign = [schedule.partition.worker_of(op, q) for op, q in inst.keys]
    rank = [schedule.rank(op, q) for op, q in inst.keys]
    if schedule.dispatch == "strict":
        orders: list[list[int]] = [[] for _ in range(workers)]
        for j in sorted(range(len(inst)), key=lambda j: rank[j]):
            orders[assign[j]].append(j)
        return evaluate(inst, cost, orders)
    if schedule.dispatch == "best_effort":
        return list_schedule(inst, cost, workers, lambda av, p, w: min(av, key=rank.__getitem__),
                             assign)
    if schedule.dispatch == "random":
        prio = list(range(len(inst)))
        random.Random(schedule.seed).shuffle(prio)
        return list_schedule(inst, cost, workers, lambda av, p, w: min(av, key=prio.__getitem__),
                             assign)

    def longest_prefix(av: Sequence[int], prev: int | None, w: int) -> int:
        if prev is None:
            return av[0]
        return min(av, key=lambda j: (inst.prefill(prev, j) - inst.tree.prompt_weight(
            inst.keys[j]), j))

    return list_schedule(inst, cost, workers, longest_prefix, assign)
