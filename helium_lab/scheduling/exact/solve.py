"""`solve_exact`: the exact optimum of Eq. 5 on a small instance, and `MilpResult`.

It combines the heuristic incumbent (`incumbent`), the one-worker branch and bound
(`branch_and_bound`) and the MILP (`milp`) under one time limit. The reported makespan is
always T(σ) of the returned orders re-evaluated with `tokensteps.evaluate_orders`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

from helium_lab.cost import TokenStepCost
from helium_lab.scheduling.exact.branch_and_bound import SingleWorkerBnB
from helium_lab.scheduling.exact.incumbent import canonical, heuristic_incumbent
from helium_lab.scheduling.exact.instance import PreparedInstance
from helium_lab.scheduling.exact.milp import REL_GAP, run_milp
from helium_lab.scheduling.tokensteps import CallInstance, evaluate_orders


@dataclass(frozen=True)
class MilpResult:
    """What `solve_exact` found: the best orders, their makespan and a proven bound."""

    status: str  # "optimal" | "time_limit" (incumbent not proven) | "infeasible" | "error"
    makespan: float  # T(σ*) of `orders`, re-evaluated with tokensteps.evaluate_orders
    bound: float  # best proven lower bound on the optimal makespan
    orders: list[list[int]]  # per-worker call order (indices into inst.keys)
    solve_s: float
    mip_gap: float  # (makespan − bound) / makespan


def solve_exact(inst: CallInstance, cost: TokenStepCost, workers: int = 1, *,
                time_limit_s: float = 60.0, warm_start: list[list[int]] | None = None,
                upper_bound: float | None = None,
                method: Literal["auto", "milp", "bnb"] = "auto") -> MilpResult:
    """Minimize T(σ) (Eq. 5) over worker assignments and orders, exactly for small instances.

    `method`: "milp" solves the MILP of `exact.milp` with HiGHS; "bnb" (one worker
    only) runs the depth-first branch and bound `SingleWorkerBnB`; "auto" uses the MILP for
    several workers and, for one worker, B&B for a third of the time, then the MILP (warm
    started from the B&B incumbent, C ≥ the B&B bound) for a third, then resumes the B&B.
    `warm_start`: per-worker orders to start from. `upper_bound`: a makespan the caller
    knows to be achievable; if no schedule reaches it, the status is "infeasible", `bound`
    is a proven lower bound ≥ `upper_bound` and the best schedule found is returned.
    `time_limit_s` covers everything (heuristic, model build, search).
    """
    t0 = time.perf_counter()
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if len(cost.capacities) < workers:
        raise ValueError(f"cost has {len(cost.capacities)} worker capacities, need {workers}")
    if method not in ("auto", "milp", "bnb"):
        raise ValueError(f"method must be 'auto', 'milp' or 'bnb', got {method!r}")
    if method == "bnb" and workers != 1:
        raise ValueError("method='bnb' handles one worker only")
    n = len(inst)
    if n == 0:
        return MilpResult("optimal", 0.0, 0.0, [[] for _ in range(workers)], 0.0, 0.0)
    deadline = t0 + time_limit_s
    d = PreparedInstance(inst, cost, workers)
    extra: list[list[list[int]]] = []
    if warm_start is not None:
        if len(warm_start) != workers:
            raise ValueError(f"warm_start has {len(warm_start)} worker orders, need {workers}")
        if sorted(j for o in warm_start for j in o) != list(range(n)) or \
                d.times(warm_start) is None:
            raise ValueError("warm_start must hold every call once, in dependency order")
        extra.append([list(o) for o in warm_start])
    budget = min(2.0, 0.05 * time_limit_s) * (1.0 if n > 8 else 0.3)
    best, orders = heuristic_incumbent(d, budget, extra)
    orders = canonical(d, orders)
    cutoff = best if upper_bound is None else min(best, float(upper_bound))
    lb = d.static_bound()
    status = "time_limit"
    bnb: SingleWorkerBnB | None = None
    if workers == 1 and method != "milp":
        bnb = SingleWorkerBnB(d, orders[0], best, cutoff)
        lb = max(lb, bnb.root_bound)
    if lb >= cutoff * (1 - REL_GAP):
        status = "optimal" if cutoff >= best * (1 - REL_GAP) else "infeasible"
    elif bnb is not None:
        frac = 1.0 if method == "bnb" else 1.0 / 3.0
        proved = bnb.run(time.perf_counter() + frac * (deadline - time.perf_counter()))
        if bnb.best < best:
            best, orders = bnb.best, [bnb.order]
        lb = max(lb, min(bnb.bound(), cutoff))
        if proved:
            status = "optimal" if best <= cutoff * (1 + REL_GAP) else "infeasible"
    if status == "time_limit" and method != "bnb":
        remaining = deadline - time.perf_counter()
        if bnb is not None:
            remaining /= 2.0
        ub = min(best, cutoff)
        status, found, bound = run_milp(d, ub, lb, orders if best <= ub else None,
                                         max(remaining, 0.01))
        lb = max(lb, bound)
        if found is not None and d.makespan(found) < best:
            best, orders = d.makespan(found), found
        if status == "optimal" and best > cutoff * (1 + REL_GAP):
            status = "infeasible"
        if bnb is not None and status not in ("optimal", "infeasible"):
            if best < bnb.best:
                bnb.best, bnb.order = best, list(orders[0])
            proved = bnb.run(deadline)
            if bnb.best < best:
                best, orders = bnb.best, [bnb.order]
            lb = max(lb, min(bnb.bound(), cutoff))
            status = ("optimal" if best <= cutoff * (1 + REL_GAP) else "infeasible") \
                if proved else "time_limit"
    mk = evaluate_orders(inst, cost, orders).makespan
    bound = lb if status == "infeasible" else min(max(lb, 0.0), mk)
    if status == "optimal":
        bound = mk
    gap = max((mk - bound) / mk, 0.0) if mk > 0 else 0.0
    if status == "time_limit" and gap <= REL_GAP:
        status, bound, gap = "optimal", mk, 0.0
    return MilpResult(status, mk, bound, [list(o) for o in orders],
                      time.perf_counter() - t0, gap)

