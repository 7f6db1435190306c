"""The MILP of Eq. 5 (HiGHS), any number of workers. Times in token steps, rescaled so that
UB ≈ 1e3.

* Immediate-precedence binaries x[a] for arcs a = (i → j, class k): i is a call or the dummy
  start node of a worker, j a call. Workers with the same (usage, delay) scale form a
  *class*; call→call arcs exist once per class (one class when capacities are uniform), a
  start arc belongs to its worker's class. Every call has exactly one predecessor; a start
  node at most one successor; a call continues only within the class it runs on.
* p_j = Σ_a x[a]·u_a with u_a = cost.usage(inst.prefill(i, j), len_out_j) (Eqs. 1–3; the
  full prompt from a start node), c_j = b_j + p_j, b_j ≥ c_i − M_ij(1 − Σ_k x[i→j,k]),
  b_j ≥ c_i + d_i for each dependency i → j (Eq. 4; d by the producer's worker, as in the
  paper), C ≥ c_j, minimize C. Cycles among calls are impossible because usage > 0.
* Upper bound UB: the best of a few list schedules improved by local search (relocation
  moves; `incumbent`), the caller's `warm_start` and `upper_bound`, passed to HiGHS as a
  MIP start. It gives C ≤ UB, time windows b_j ∈ [r_j, UB − q_j − p^min_j] (r: heads, q:
  tails, from dependency chains with minimal usages and delays, and energy), per-pair
  big-Ms M_ij = UB − q_i − r_j, and removes arcs that cannot fit in the windows or would
  run a descendant right before its ancestor.
* Valid inequalities: C ≥ c_j + q_j; W·C ≥ Σ_j p_j, and W·(C − t − t') ≥ Σ p_j over the calls
  with r_j ≥ t and q_j ≥ t'; W·(C − c_i − d_i) ≥ Σ p over i's descendants; W·(b_j − d) ≥ Σ p
  over j's ancestors; x[i→j] + x[j→i] ≤ 1; for the calls below each TRT node, one arc
  enters the group from outside (a subtour cut: the shared prefix is prefilled at least
  once). Symmetry breaking: identical workers are used in order of their first call's
  index; interchangeable queries (blocks of keys (op, q) whose swap maps usages, delays and
  dependencies onto themselves) start their first op in block order.

The MILP goes through `highspy` (a HiGHS binding installed in the venv) so that the
incumbent is a MIP start (`setSolution`); without `highspy` it falls back to
`scipy.optimize.milp` (the same HiGHS, no MIP start: UB and the big-Ms still come from the
incumbent). `run_milp` is one such solve.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.sparse import coo_matrix

from helium_lab.scheduling.exact.incumbent import canonical
from helium_lab.scheduling.exact.instance import PreparedInstance

_TARGET = 1000.0  # internal time scale: UB maps to this
REL_GAP = 1e-6  # relative optimality gap of every exact answer


@dataclass
class MilpModel:
    """The MILP in matrix form: minimize c·x, row_lo ≤ A·x ≤ row_hi, col_lo ≤ x ≤ col_hi;
    columns: the arc binaries, then b_j, then c_j, then C."""

    c: np.ndarray
    A: coo_matrix
    row_lo: np.ndarray
    row_hi: np.ndarray
    col_lo: np.ndarray
    col_hi: np.ndarray
    integrality: np.ndarray
    arcs: list[tuple[int, int, int]]  # (src, dst, class); src >= n: start node of worker src-n


def build_model(d: PreparedInstance, ub: float, scale: float, lb: float = 0.0) -> MilpModel:
    """The MILP for makespans ≤ `ub` and ≥ `lb`, times divided by `scale`."""
    n, W = d.n, d.W
    tol = 1e-9 * max(ub, 1.0)
    ubs = ub + tol
    arcs: list[tuple[int, int, int]] = []
    for w in range(W):
        k = d.cls[w]
        for j in range(n):
            if d.r[j] + float(d.U[k][n, j]) <= ubs - d.q[j]:
                arcs.append((n + w, j, k))
    for i in range(n):
        for j in range(n):
            if i == j or i in d.desc[j]:
                continue
            for k in range(d.K):
                if d.r[i] + d.pmin[i] + float(d.U[k][i, j]) <= ubs - d.q[j]:
                    arcs.append((i, j, k))
    A = len(arcs)
    col_b = [A + j for j in range(n)]
    col_c = [A + n + j for j in range(n)]
    col_C = A + 2 * n
    ncol = col_C + 1
    s = 1.0 / scale
    rows: list[tuple[dict[int, float], float, float]] = []
    into: list[list[int]] = [[] for _ in range(n)]
    out_of: list[list[int]] = [[] for _ in range(n + W)]
    pair: dict[tuple[int, int], list[int]] = {}
    for a, (i, j, _k) in enumerate(arcs):
        into[j].append(a)
        out_of[i].append(a)
        if i < n:
            pair.setdefault((i, j), []).append(a)
    inf = math.inf
    for j in range(n):  # exactly one predecessor
        rows.append(({a: 1.0 for a in into[j]}, 1.0, 1.0))
    for w in range(W):  # a start node has at most one successor
        if out_of[n + w]:
            rows.append(({a: 1.0 for a in out_of[n + w]}, -inf, 1.0))
    for i in range(n):  # a call has at most one successor, on its own class
        if d.K == 1:
            if out_of[i]:
                rows.append(({a: 1.0 for a in out_of[i]}, -inf, 1.0))
        else:
            for k in range(d.K):
                row = {a: 1.0 for a in out_of[i] if arcs[a][2] == k}
                if row:
                    for a in into[i]:
                        if arcs[a][2] == k:
                            row[a] = -1.0
                    rows.append((row, -inf, 0.0))
    for j in range(n):  # c_j = b_j + p_j
        row = {col_c[j]: 1.0, col_b[j]: -1.0}
        for a in into[j]:
            row[a] = -float(d.U[arcs[a][2]][min(arcs[a][0], n), j]) * s
        rows.append((row, 0.0, 0.0))
    for j in range(n):  # precedence with delay (by the producer's worker)
        for i in d.deps[j]:
            if d.K == 1:
                rows.append(({col_b[j]: 1.0, col_c[i]: -1.0}, float(d.D[0][i]) * s, inf))
            else:
                row = {col_b[j]: 1.0, col_c[i]: -1.0}
                for a in into[i]:
                    row[a] = -float(d.D[arcs[a][2]][i]) * s
                rows.append((row, 0.0, inf))
    for (i, j), alist in pair.items():  # sequencing on the same worker
        if i in d.anc[j]:
            continue  # implied by the dependency chain
        big = (ubs - d.q[i] - d.r[j]) * s
        if big > 0:
            row = {col_b[j]: 1.0, col_c[i]: -1.0}
            for a in alist:
                row[a] = -big
            rows.append((row, -big, inf))
        if i < j and (j, i) in pair:
            rows.append(({a: 1.0 for a in alist + pair[(j, i)]}, -inf, 1.0))
    for g in d.groups:  # calls sharing a prefix: someone enters the group from outside
        gs = set(g)
        row = {a: 1.0 for j in g for a in into[j] if arcs[a][0] not in gs}
        rows.append((row, 1.0, inf))
    for j in range(n):  # tails
        rows.append(({col_C: 1.0, col_c[j]: -1.0}, d.q[j] * s, inf))

    def energy(row: dict[int, float], calls: set[int] | list[int]) -> dict[int, float]:
        for k in calls:
            row[col_c[k]] = row.get(col_c[k], 0.0) - 1.0
            row[col_b[k]] = row.get(col_b[k], 0.0) + 1.0
        return row

    for t, tq, members in d.windows():  # W (C - t - t') >= sum of p over the window
        rows.append((energy({col_C: float(W)}, members), W * (t + tq) * s, inf))
    for i in range(n):
        if d.desc[i]:
            row = energy({col_C: float(W), col_c[i]: -float(W)}, d.desc[i])
            rows.append((row, W * d.dmin[i] * s, inf))
        if d.anc[i]:
            row = energy({col_b[i]: float(W)}, d.anc[i])
            rows.append((row, W * min(d.dmin[p] for p in d.deps[i]) * s, inf))
    for orbit in d.orbits:  # interchangeable queries start in block order
        for prev, block in itertools.pairwise(orbit):
            rows.append(({col_b[block[0]]: 1.0, col_b[prev[0]]: -1.0}, 0.0, inf))
    for ws in d.members:  # symmetry breaking among identical workers
        for w1, w2 in itertools.pairwise(ws):
            used = {a: 1.0 for a in out_of[n + w1]}
            for a in out_of[n + w2]:
                used[a] = used.get(a, 0.0) - 1.0
            rows.append((used, 0.0, inf))
            first = {a: float(arcs[a][1] + 1) for a in out_of[n + w1]}
            for a in out_of[n + w2]:
                first[a] = first.get(a, 0.0) - float(arcs[a][1] + 1) + (n + 1)
            rows.append((first, -inf, float(n + 1)))
    ri, ci, vals = [], [], []
    for r, (row, _, _) in enumerate(rows):
        for col, v in row.items():
            if v != 0.0:
                ri.append(r)
                ci.append(col)
                vals.append(v)
    mat = coo_matrix((vals, (ri, ci)), shape=(len(rows), ncol))
    col_lo = np.zeros(ncol)
    col_hi = np.ones(ncol)
    for j in range(n):
        col_lo[col_b[j]] = d.r[j] * s
        col_hi[col_b[j]] = (ubs - d.q[j] - d.pmin[j]) * s
        col_lo[col_c[j]] = (d.r[j] + d.pmin[j]) * s
        col_hi[col_c[j]] = (ubs - d.q[j]) * s
    col_lo[col_C] = max(d.static_bound(), lb) * s
    col_hi[col_C] = ubs * s
    cost = np.zeros(ncol)
    cost[col_C] = 1.0
    integ = np.zeros(ncol, dtype=np.uint8)
    integ[:A] = 1
    return MilpModel(cost, mat, np.array([r[1] for r in rows]), np.array([r[2] for r in rows]),
                  col_lo, col_hi, integ, arcs)


def start_values(d: PreparedInstance, m: MilpModel, orders: list[list[int]], scale: float
                 ) -> np.ndarray | None:
    """The model's variables for a schedule (a MIP start), or None if the model has no arc
    for one of its steps; `orders` must meet the symmetry breaking (`incumbent.canonical`)."""
    t = d.times(orders)
    if t is None:
        return None
    mk, start, end = t
    n = d.n
    idx = {arc: a for a, arc in enumerate(m.arcs)}
    x = np.zeros(len(m.c))
    for w, o in enumerate(orders):
        prev = n + w
        for j in o:
            a = idx.get((prev, j, d.cls[w]))
            if a is None:
                return None
            x[a] = 1.0
            prev = j
    A = len(m.arcs)
    x[A:A + n] = np.array(start) / scale
    x[A + n:A + 2 * n] = np.array(end) / scale
    x[A + 2 * n] = mk / scale
    return np.clip(x, m.col_lo, m.col_hi)


def _solve_highspy(m: MilpModel, start: np.ndarray | None, time_limit: float
                   ) -> tuple[str, np.ndarray | None, float]:
    import highspy

    highs: Any = highspy.Highs  # partly annotated: typed as Any here, strict or not
    h = highs()
    h.setOptionValue("output_flag", False)
    csc = m.A.tocsc()
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = csc.shape[1], csc.shape[0]
    lp.col_cost_ = m.c
    lp.col_lower_, lp.col_upper_ = m.col_lo, m.col_hi
    lp.row_lower_ = np.where(np.isinf(m.row_lo), -highspy.kHighsInf, m.row_lo)
    lp.row_upper_ = np.where(np.isinf(m.row_hi), highspy.kHighsInf, m.row_hi)
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = csc.indptr
    lp.a_matrix_.index_ = csc.indices
    lp.a_matrix_.value_ = csc.data
    lp.integrality_ = [highspy.HighsVarType.kInteger if v else highspy.HighsVarType.kContinuous
                       for v in m.integrality]
    h.passModel(lp)
    for opt, val in (("time_limit", max(time_limit, 0.01)), ("mip_rel_gap", REL_GAP),
                     ("mip_abs_gap", 1e-9), ("random_seed", 0), ("threads", 1)):
        h.setOptionValue(opt, val)
    if start is not None:
        sol = highspy.HighsSolution()
        sol.col_value = list(start)
        sol.value_valid = True
        h.setSolution(sol)
    h.run()
    ms = h.getModelStatus()
    info = h.getInfo()
    bound = float(info.mip_dual_bound)
    has_sol = info.primal_solution_status == 2  # kSolutionStatusFeasible
    x = np.array(h.getSolution().col_value) if has_sol else None
    S = highspy.HighsModelStatus
    if ms == S.kOptimal:
        status = "optimal"
    elif ms == S.kInfeasible:
        status = "infeasible"
    elif ms in (S.kTimeLimit, S.kInterrupt, S.kIterationLimit, S.kSolutionLimit):
        status = "time_limit"
    else:
        status = "error"
    return status, x, bound


def _solve_scipy(m: MilpModel, time_limit: float) -> tuple[str, np.ndarray | None, float]:
    from scipy.optimize import Bounds, LinearConstraint, milp

    res = milp(m.c, integrality=m.integrality, bounds=Bounds(m.col_lo, m.col_hi),
               constraints=LinearConstraint(m.A.tocsr(), m.row_lo, m.row_hi),
               options={"time_limit": max(time_limit, 0.01), "mip_rel_gap": REL_GAP,
                        "disp": False})
    dual = getattr(res, "mip_dual_bound", None)
    bound = -math.inf if dual is None else float(dual)
    status = {0: "optimal", 1: "time_limit", 2: "infeasible"}.get(res.status, "error")
    return status, (None if res.x is None else np.asarray(res.x)), bound


def orders_from_solution(d: PreparedInstance, m: MilpModel, x: np.ndarray
                         ) -> list[list[int]] | None:
    """Per-worker orders along the chosen arcs, or None if they miss a call."""
    n = d.n
    succ: dict[int, int] = {}
    for a, (i, j, _k) in enumerate(m.arcs):
        if x[a] > 0.5:
            succ[i] = j
    orders: list[list[int]] = []
    seen: set[int] = set()
    for w in range(d.W):
        o: list[int] = []
        cur = succ.get(n + w)
        while cur is not None and cur not in seen:
            o.append(cur)
            seen.add(cur)
            cur = succ.get(cur)
        orders.append(o)
    return orders if len(seen) == n else None


def run_milp(d: PreparedInstance, ub: float, lb: float, incumbent: list[list[int]] | None,
             time_limit: float) -> tuple[str, list[list[int]] | None, float]:
    """One HiGHS run: status, the solution's orders (if any), proven lower bound."""
    scale = max(ub, 1e-9) / _TARGET
    model = build_model(d, ub, scale, lb)
    start = None if incumbent is None else start_values(d, model, canonical(d, incumbent),
                                                         scale)
    try:
        import highspy  # noqa: F401
    except ImportError:
        status, x, dual = _solve_scipy(model, time_limit)
    else:
        status, x, dual = _solve_highspy(model, start, time_limit)
    orders = None if x is None else orders_from_solution(d, model, x)
    bound = ub if status == "infeasible" else max(lb, dual * scale if math.isfinite(dual) else lb)
    return status, orders, bound

