"""The exact solvers' heuristic incumbent, and its canonical form.

`heuristic_incumbent`: the best of a few non-delay list schedules (`tokensteps.list_orders`
ranked by tail, usage, index and random priorities, plus any caller-given schedules)
improved by local search (`refine.relocate`, moves within and across workers) for a time
budget. Its makespan is the upper bound UB both exact engines start from.

`canonical`: an equivalent schedule meeting the MILP's symmetry breaking, so that an
incumbent can be handed to HiGHS as a MIP start.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from helium_lab.scheduling.exact.instance import PreparedInstance
from helium_lab.scheduling.refine import relocate
from helium_lab.scheduling.tokensteps import list_orders

# Ranks a ready call j for worker w whose previous call is p (smallest first).
ReadyKey = Callable[[int, int | None, int], tuple[float, ...]]


def greedy(d: PreparedInstance, key: ReadyKey) -> list[list[int]]:
    """Non-delay list scheduling on the earliest-free worker; `key` ranks ready calls."""
    orders, _, _ = list_orders(d.deps, d.users, d.W,
                               lambda avail, p, w: min(avail, key=lambda j: key(j, p, w)),
                               d.usage, d.delay)
    return orders


def _by_priority(prio: list[float]) -> ReadyKey:
    return lambda j, p, w: (prio[j],)


def heuristic_incumbent(d: PreparedInstance, budget_s: float, extra: list[list[list[int]]]
                        ) -> tuple[float, list[list[int]]]:
    """(T(σ), σ) of the best list schedule after local search within `budget_s` seconds;
    `extra`: further starting schedules (the caller's warm start)."""
    deadline = time.perf_counter() + budget_s
    rng = random.Random(0)
    keys: list[ReadyKey] = [
        lambda j, p, w: (-(d.q[j] + d.pmin[j]), d.usage(p, j, w), j),
        lambda j, p, w: (d.usage(p, j, w), -d.q[j], j),
        lambda j, p, w: (d.usage(p, j, w) - d.q[j], j),
        lambda j, p, w: (float(j),),
    ]
    for _ in range(4):
        keys.append(_by_priority([rng.random() for _ in range(d.n)]))
    starts = [greedy(d, k) for k in keys] + extra
    scored = sorted(((d.makespan(o), i, o) for i, o in enumerate(starts)), key=lambda t: t[:2])
    best, best_orders = scored[0][0], scored[0][2]
    for _, _, o in scored:
        if time.perf_counter() > deadline:
            break
        m, o2 = relocate(d.makespan, [list(x) for x in o], deadline, across_workers=True)
        if m < best:
            best, best_orders = m, o2
    return best, best_orders


def canonical(d: PreparedInstance, orders: list[list[int]]) -> list[list[int]]:
    """An equivalent schedule meeting the MILP's symmetry breaking: interchangeable query
    blocks relabelled by the start of their first op, then identical workers permuted (used
    ones first, by the index of their first call)."""
    t = d.times(orders)
    if t is not None and d.orbits:
        start = t[1]
        perm = list(range(d.n))
        for orbit in d.orbits:
            ranked = sorted(orbit, key=lambda b: (start[b[0]], b[0]))
            for src, dst in zip(ranked, orbit, strict=True):
                for x, y in zip(src, dst, strict=True):
                    perm[x] = y
        orders = [[perm[j] for j in o] for o in orders]
    out = [list(o) for o in orders]
    for ws in d.members:
        seqs = sorted((orders[w] for w in ws), key=lambda o: (not o, o[0] if o else 0))
        for w, s in zip(ws, seqs, strict=True):
            out[w] = list(s)
    return out
