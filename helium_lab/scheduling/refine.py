"""Cost-based refinement of a small schedule at call level (our addition to Alg. 1).

Alg. 1 works on the operator-level TRT with per-op averages, so it cannot see that, e.g.,
finishing one query's first-round calls early releases its second round sooner. When the
whole batch is small (at most `max_calls` calls), the planner can afford to look: starting
from the call orders Alg. 1 and longest-shared-prefix-first induce, it relocates single
calls within each worker's order while Eq. 5's T(σ) drops (first improvement, bounded by a
time budget), and hands the result to the processor as an explicit strict order. Larger
batches keep the operator-level soft schedule, whose planning cost does not grow with the
batch.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from helium_lab.cost import TokenStepCost
from helium_lab.scheduling.tokensteps import CallInstance, evaluate


def _cost(inst: CallInstance, cost: TokenStepCost, orders: Sequence[Sequence[int]]) -> float:
    try:
        return evaluate(inst, cost, orders).makespan
    except ValueError:  # a move put a call before one of its inputs
        return float("inf")


def relocate(makespan: Callable[[list[list[int]]], float], orders: list[list[int]],
             deadline: float, *, across_workers: bool = False
             ) -> tuple[float, list[list[int]]]:
    """Move single calls to other positions (of any worker if `across_workers`) while
    `makespan(orders)` (inf when infeasible) drops; first improvement, until `deadline`."""
    best = makespan(orders)
    improved = True
    while improved and time.perf_counter() < deadline:
        improved = False
        for w, order in enumerate(orders):
            for p in range(len(order)):
                base = [list(o) for o in orders]
                j = base[w].pop(p)
                for w2 in (range(len(orders)) if across_workers else (w,)):
                    for p2 in range(len(base[w2]) + 1):
                        if (w2, p2) == (w, p):
                            continue
                        cand = [list(o) for o in base]
                        cand[w2].insert(p2, j)
                        m = makespan(cand)
                        if m < best * (1 - 1e-12):
                            best, orders, improved = m, cand, True
                            break
                    if improved:
                        break
                if improved or time.perf_counter() > deadline:
                    break
            if improved:
                break
    return best, orders


def refine(inst: CallInstance, cost: TokenStepCost, starts: Sequence[list[list[int]]],
           budget_s: float) -> tuple[float, list[list[int]]]:
    """The best order found from any of `starts` within `budget_s` seconds."""
    deadline = time.perf_counter() + budget_s
    scored = sorted(((_cost(inst, cost, s), i) for i, s in enumerate(starts)))
    best, best_orders = scored[0][0], [list(o) for o in starts[scored[0][1]]]
    for _, i in scored:
        if time.perf_counter() > deadline:
            break
        m, o = relocate(lambda o: _cost(inst, cost, o), [list(x) for x in starts[i]],
                        deadline)
        if m < best:
            best, best_orders = m, o
    return best, best_orders
