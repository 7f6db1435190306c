"""Cost-based refinement of a small schedule at call level (our addition to Alg. 1).

Alg. 1 works on the operator-level TRT with per-op averages, so it cannot see that, e.g.,
finishing one query's first-round calls early releases its second round sooner. When the
whole batch is small (at most `max_calls` calls), the planner can afford to look: starting
from the call orders Alg. 1 and longest-shared-prefix-first induce, it relocates single
calls within each worker's order while Eq. 5's T(σ) drops (first improvement), and hands
the result to the processor as an explicit strict order. Larger batches keep the
operator-level soft schedule, whose planning cost does not grow with the batch.

The search is bounded by *work*, not time: at most `max_evaluations` evaluations of T(σ)
(`EvaluationBudget`; the planner key `planner.refine_max_evaluations`), so the schedule is
the same on a fast and a slow machine. Nothing here reads the clock on the planner's path;
`relocate`'s optional `deadline` exists only for the exact solver's time-limited incumbent
search (`exact.incumbent.heuristic_incumbent`), whose result is time-limited by design.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from helium_lab.cost import TokenStepCost
from helium_lab.scheduling.tokensteps import CallInstance, evaluate_orders

# Default of `planner.refine_max_evaluations` (conf/config.yaml, PlannerSettings): every
# Table 5 instance reaches its local optimum within 326 evaluations; at the 64-call limit
# one evaluation costs ~0.1-0.3 ms, so planning stays under the old 0.5 s deadline. See
# docs/decisions.md ("Deterministic refinement").
DEFAULT_MAX_EVALUATIONS = 1000


class EvaluationBudget:
    """A work bound shared by one search: at most `limit` evaluations of T(σ).

    `used` counts the evaluations made (deterministic: the planner reports it as the
    `refine_evaluations` stat)."""

    __slots__ = ("limit", "used")

    def __init__(self, limit: int) -> None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"the evaluation budget must be a positive int, got {limit!r}")
        self.limit = limit
        self.used = 0

    @property
    def exhausted(self) -> bool:
        return self.used >= self.limit

    def take(self) -> bool:
        """Count one evaluation; False (nothing counted) once the budget is spent."""
        if self.used >= self.limit:
            return False
        self.used += 1
        return True


def _window(order: Sequence[int], deps: Sequence[int], users: Sequence[int]
            ) -> tuple[int, int]:
    """Insertion positions in `order` (a worker's order without the moved call) after
    every input and before every dependent of the call that `order` holds: [lo, hi]."""
    if not deps and not users:
        return 0, len(order)
    ins, outs = set(deps), set(users)
    lo, hi = 0, len(order)
    for p, k in enumerate(order):
        if k in ins:
            lo = p + 1
        elif k in outs and p < hi:
            hi = p
    return lo, hi


def _cost(inst: CallInstance, cost: TokenStepCost, orders: Sequence[Sequence[int]]) -> float:
    try:
        return evaluate_orders(inst, cost, orders).makespan
    except ValueError:  # a move put a call before one of its inputs
        return float("inf")


def relocate(makespan: Callable[[list[list[int]]], float], orders: list[list[int]],
             deadline: float | None = None, *, across_workers: bool = False,
             budget: EvaluationBudget | None = None, best: float | None = None,
             deps: Sequence[Sequence[int]] | None = None,
             users: Sequence[Sequence[int]] | None = None
             ) -> tuple[float, list[list[int]]]:
    """Move single calls to other positions (of any worker if `across_workers`) while
    `makespan(orders)` (inf when infeasible) drops; first improvement, until a local optimum,
    the `budget` of evaluations is spent, or (only if given) the wall-clock `deadline` passes.

    `best`: `makespan(orders)` if the caller already knows it (saves one evaluation; an
    evaluation of the start is counted against `budget` otherwise). `deps` / `users`: each
    call's direct inputs / dependents; given, a call is only tried between its last input
    and its first dependent on the target worker (other positions cannot be feasible), so
    no evaluation is spent on them. The order of the candidates tried is unchanged."""

    def late() -> bool:
        return deadline is not None and time.perf_counter() > deadline

    if best is None:
        best = makespan(orders)
        if budget is not None:
            budget.used += 1  # always evaluated: the caller needs its value
    improved = True
    while improved and not late():
        improved = False
        for w, order in enumerate(orders):
            for p in range(len(order)):
                base = [list(o) for o in orders]
                j = base[w].pop(p)
                for w2 in (range(len(orders)) if across_workers else (w,)):
                    lo, hi = 0, len(base[w2])
                    if deps is not None and users is not None:
                        lo, hi = _window(base[w2], deps[j], users[j])
                    for p2 in range(lo, hi + 1):
                        if (w2, p2) == (w, p):
                            continue
                        if budget is not None and not budget.take():
                            return best, orders
                        cand = [list(o) for o in base]
                        cand[w2].insert(p2, j)
                        m = makespan(cand)
                        if m < best * (1 - 1e-12):
                            best, orders, improved = m, cand, True
                            break
                    if improved:
                        break
                if improved or late():
                    break
            if improved:
                break
    return best, orders


def refine(inst: CallInstance, cost: TokenStepCost, starts: Sequence[list[list[int]]],
           budget: EvaluationBudget) -> tuple[float, list[list[int]]]:
    """The best order found from any of `starts` within `budget` evaluations of T(σ).

    The starts are scored first (one evaluation each, always made), then relocation runs
    from each in order of its score while the budget lasts. Deterministic: the result
    depends on the inputs and the budget only."""
    scored = []
    for i, s in enumerate(starts):
        scored.append((_cost(inst, cost, s), i))
        budget.used += 1
    scored.sort()
    best, best_orders = scored[0][0], [list(o) for o in starts[scored[0][1]]]
    for score, i in scored:
        if budget.exhausted:
            break
        m, o = relocate(lambda o: _cost(inst, cost, o), [list(x) for x in starts[i]],
                        budget=budget, best=score, deps=inst.deps, users=inst.users)
        if m < best:
            best, best_orders = m, o
    return best, best_orders
