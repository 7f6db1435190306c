"""Exact solver of Eq. 5 (PAPER.md §4.1) for small call-level instances: a MILP on HiGHS.

It gives the reference optimum σ* of the optimality study (§4.5, Table 5; Eq. 6's gap).

Formulation (times in token steps, internally rescaled so the makespan is ~1e3):

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
  moves), the caller's `warm_start` and `upper_bound`. It gives C ≤ UB, time windows
  b_j ∈ [r_j, UB − q_j − p^min_j] (r: heads, q: tails, from dependency chains with minimal
  processing times and delays plus energy bounds), per-pair big-Ms M_ij = UB − q_i − r_j,
  and removes arcs that cannot fit in the windows or run a descendant before its ancestor.
* Valid inequalities: C ≥ c_j + q_j; W·C ≥ Σ_j p_j, and W·(C − t − t') ≥ Σ p_j over the calls
  with r_j ≥ t and q_j ≥ t'; W·(C − c_i − d_i) ≥ Σ p over i's descendants; W·(b_j − d) ≥ Σ p
  over j's ancestors; x[i→j] + x[j→i] ≤ 1; with ≥ 2 identical workers, symmetry breaking
  (used workers first, ordered by the index of their first call).

The solver is HiGHS through `highspy` (bundled with the venv) so that the heuristic
incumbent is passed as a MIP start (`setSolution`); without `highspy` it falls back to
`scipy.optimize.milp` (the same HiGHS, no MIP start), where the heuristic still supplies
UB and the big-Ms. The reported makespan is always T(σ) of the returned orders re-evaluated
by `tokensteps.evaluate`.
"""

from __future__ import annotations

import itertools
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix

from helium_lab.cost import TokenStepCost
from helium_lab.scheduling.tokensteps import CallInstance, evaluate
from helium_lab.trt.tree import Node

_TARGET = 1000.0  # internal time scale: UB maps to this
_REL_GAP = 1e-6


@dataclass(frozen=True)
class MilpResult:
    status: str  # "optimal" | "time_limit" (incumbent not proven) | "infeasible" | "error"
    makespan: float  # T(σ*) of `orders`, re-evaluated with tokensteps.evaluate
    bound: float  # best proven lower bound on the optimal makespan
    orders: list[list[int]]  # per-worker call order (indices into inst.keys)
    solve_s: float
    mip_gap: float  # (makespan − bound) / makespan


# -- instance data ------------------------------------------------------------------------
class _Data:
    """Usage and delay matrices per worker class, dependency closure, heads and tails."""

    def __init__(self, inst: CallInstance, cost: TokenStepCost, workers: int) -> None:
        n = self.n = len(inst)
        self.W = workers
        sig: dict[tuple[float, float], int] = {}
        self.cls: list[int] = []
        self.rep: list[int] = []  # representative worker of each class
        for w in range(workers):
            key = (cost.usage(0.0, 1.0, w), cost.delay(1.0, w))
            if key not in sig:
                sig[key] = len(self.rep)
                self.rep.append(w)
            self.cls.append(sig[key])
        self.K = len(self.rep)
        self.members = [[w for w in range(workers) if self.cls[w] == k] for k in range(self.K)]
        self.deps = [sorted(set(d)) for d in inst.deps]
        self.users: list[list[int]] = [[] for _ in range(n)]
        for j, ds in enumerate(self.deps):
            for i in ds:
                self.users[i].append(j)
        self.topo = self._topo()
        self.anc: list[set[int]] = [set() for _ in range(n)]
        for j in self.topo:
            for i in self.deps[j]:
                self.anc[j] |= self.anc[i] | {i}
        self.desc: list[set[int]] = [set() for _ in range(n)]
        for j in range(n):
            for i in self.anc[j]:
                self.desc[i].add(j)
        self.groups = self._groups(inst)
        # prefill(i, j) with i = n for the start node (full prompt)
        pre = np.zeros((n + 1, n))
        for j in range(n):
            pre[n, j] = inst.prefill(None, j)
            for i in range(n):
                if i != j:
                    pre[i, j] = inst.prefill(i, j)
        lo = [float(x) for x in inst.len_out]
        self.U = [np.array([[cost.usage(float(pre[i, j]), lo[j], self.rep[k]) for j in range(n)]
                            for i in range(n + 1)]) for k in range(self.K)]
        self.D = [np.array([cost.delay(lo[j], self.rep[k]) for j in range(n)])
                  for k in range(self.K)]
        for k in range(self.K):
            if n and float(self.U[k].min()) <= 0.0:
                raise ValueError("every call needs a positive usage (len_out > 0)")
        self.pmin = [min(float(self.U[k][i, j]) for k in range(self.K)
                         for i in [*range(n), n] if i != j and i not in self.desc[j])
                     for j in range(n)]
        self.dmin = [min(float(self.D[k][j]) for k in range(self.K)) for j in range(n)]
        self.r = [0.0] * n  # heads: earliest start
        for j in self.topo:
            if self.deps[j]:
                chain = max(self.r[i] + self.pmin[i] + self.dmin[i] for i in self.deps[j])
                energy = (sum(self.pmin[i] for i in self.anc[j]) / workers
                          + min(self.dmin[i] for i in self.deps[j]))
                self.r[j] = max(chain, energy)
        self.q = [0.0] * n  # tails: least time from completion to the makespan
        for i in reversed(self.topo):
            if self.users[i]:
                chain = self.dmin[i] + max(self.pmin[k] + self.q[k] for k in self.users[i])
                energy = self.dmin[i] + sum(self.pmin[k] for k in self.desc[i]) / workers
                self.q[i] = max(chain, energy)

    def _groups(self, inst: CallInstance) -> list[list[int]]:
        """Call sets below each weighted TRT node (2 ≤ size < n): calls sharing a prefix."""
        index = {k: i for i, k in enumerate(inst.keys)}
        found: set[frozenset[int]] = set()

        def walk(node: Node) -> set[int]:
            calls = {index[k] for k in node.leaves if k in index}
            for child in node.children.values():
                calls |= walk(child)
            if node.weight > 0 and 2 <= len(calls) < self.n:
                found.add(frozenset(calls))
            return calls

        for root in inst.tree.roots.values():
            walk(root)
        return sorted((sorted(g) for g in found), key=lambda g: (len(g), g))

    def _topo(self) -> list[int]:
        indeg = [len(d) for d in self.deps]
        stack = [j for j in range(self.n) if indeg[j] == 0][::-1]
        out: list[int] = []
        while stack:
            i = stack.pop()
            out.append(i)
            for j in self.users[i]:
                indeg[j] -= 1
                if indeg[j] == 0:
                    stack.append(j)
        if len(out) != self.n:
            raise ValueError("the dependency graph has a cycle")
        return out

    def usage(self, prev: int | None, j: int, w: int) -> float:
        return float(self.U[self.cls[w]][self.n if prev is None else prev, j])

    def delay(self, j: int, w: int) -> float:
        return float(self.D[self.cls[w]][j])

    def static_bound(self) -> float:
        """Critical path and (release/tail-window) energy bounds with minimal usages."""
        n, W = self.n, self.W
        lb = max((self.r[j] + self.pmin[j] + self.q[j] for j in range(n)), default=0.0)
        for t, tq, members in self.windows():
            lb = max(lb, t + tq + sum(self.pmin[j] for j in members) / W)
        return lb

    def windows(self) -> list[tuple[float, float, list[int]]]:
        """Distinct sets {j : r_j ≥ t, q_j ≥ t'} with the largest t + t' for each."""
        best: dict[tuple[int, ...], tuple[float, float]] = {}
        for t in sorted(set(self.r)):
            for tq in sorted(set(self.q)):
                members = tuple(j for j in range(self.n) if self.r[j] >= t and self.q[j] >= tq)
                if members and (members not in best or sum(best[members]) < t + tq):
                    best[members] = (t, tq)
        return [(t, tq, list(m)) for m, (t, tq) in best.items()]

    # -- fast T(σ) with the paper's convention (delay by the producer's worker) -------------
    def times(self, orders: Sequence[Sequence[int]]
              ) -> tuple[float, list[float], list[float]] | None:
        n = self.n
        start, end = [0.0] * n, [-1.0] * n
        where = [0] * n
        for w, o in enumerate(orders):
            for j in o:
                where[j] = w
        pos = [0] * len(orders)
        clock = [0.0] * len(orders)
        prev: list[int | None] = [None] * len(orders)
        done = 0
        while done < n:
            progressed = False
            for w, order in enumerate(orders):
                while pos[w] < len(order):
                    j = order[pos[w]]
                    b = clock[w]
                    blocked = False
                    for i in self.deps[j]:
                        if end[i] < 0:
                            blocked = True
                            break
                        b = max(b, end[i] + self.delay(i, where[i]))
                    if blocked:
                        break
                    start[j] = b
                    end[j] = clock[w] = b + self.usage(prev[w], j, w)
                    prev[w] = j
                    pos[w] += 1
                    done += 1
                    progressed = True
            if not progressed:
                return None
        return max(end, default=0.0), start, end

    def makespan(self, orders: Sequence[Sequence[int]]) -> float:
        t = self.times(orders)
        return math.inf if t is None else t[0]


# -- heuristic incumbent ------------------------------------------------------------------
def _greedy(d: _Data, key: Callable[[int, int | None, int], tuple[float, ...]]) -> list[list[int]]:
    """Non-delay list scheduling on the earliest-free worker; `key` ranks ready calls."""
    n, W = d.n, d.W
    est = [0.0] * n
    missing = [len(x) for x in d.deps]
    ready = {j for j in range(n) if missing[j] == 0}
    clock = [0.0] * W
    prev: list[int | None] = [None] * W
    orders: list[list[int]] = [[] for _ in range(W)]
    for _ in range(n):
        w = min(range(W), key=lambda x: (clock[x], x))
        t = max(clock[w], min(est[j] for j in ready))
        avail = [j for j in ready if est[j] <= t]
        j = min(avail, key=lambda x: key(x, prev[w], w))
        end = max(t, est[j]) + d.usage(prev[w], j, w)
        clock[w], prev[w] = end, j
        orders[w].append(j)
        ready.discard(j)
        for k in d.users[j]:
            est[k] = max(est[k], end + d.delay(j, w))
            missing[k] -= 1
            if missing[k] == 0:
                ready.add(k)
    return orders


def _local_search(d: _Data, orders: list[list[int]], deadline: float
                  ) -> tuple[float, list[list[int]]]:
    """Relocate single calls (any worker, any position) while that lowers T(σ)."""
    best = d.makespan(orders)
    improved = True
    while improved and time.perf_counter() < deadline:
        improved = False
        for w in range(d.W):
            for p in range(len(orders[w])):
                if p >= len(orders[w]):
                    break
                j = orders[w][p]
                base = [list(o) for o in orders]
                del base[w][p]
                for w2 in range(d.W):
                    for p2 in range(len(base[w2]) + 1):
                        if w2 == w and p2 == p:
                            continue
                        cand = [list(o) for o in base]
                        cand[w2].insert(p2, j)
                        m = d.makespan(cand)
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


def _by_priority(prio: list[float]) -> Callable[[int, int | None, int], tuple[float, ...]]:
    return lambda j, p, w: (prio[j],)


def _heuristic(d: _Data, budget_s: float, extra: list[list[list[int]]]
               ) -> tuple[float, list[list[int]]]:
    deadline = time.perf_counter() + budget_s
    rng = random.Random(0)
    keys: list[Callable[[int, int | None, int], tuple[float, ...]]] = [
        lambda j, p, w: (-(d.q[j] + d.pmin[j]), d.usage(p, j, w), j),
        lambda j, p, w: (d.usage(p, j, w), -d.q[j], j),
        lambda j, p, w: (d.usage(p, j, w) - d.q[j], j),
        lambda j, p, w: (float(j),),
    ]
    for _ in range(4):
        keys.append(_by_priority([rng.random() for _ in range(d.n)]))
    starts = [_greedy(d, k) for k in keys] + extra
    scored = sorted(((d.makespan(o), i, o) for i, o in enumerate(starts)), key=lambda t: t[:2])
    best, best_orders = scored[0][0], scored[0][2]
    for _, _, o in scored:
        if time.perf_counter() > deadline:
            break
        m, o2 = _local_search(d, [list(x) for x in o], deadline)
        if m < best:
            best, best_orders = m, o2
    return best, best_orders


def _canonical(d: _Data, orders: list[list[int]]) -> list[list[int]]:
    """Permute identical workers: used ones first, by the index of their first call."""
    out = [list(o) for o in orders]
    for ws in d.members:
        seqs = sorted((orders[w] for w in ws), key=lambda o: (not o, o[0] if o else 0))
        for w, s in zip(ws, seqs, strict=True):
            out[w] = list(s)
    return out


# -- the MILP ---------------------------------------------------------------------------
@dataclass
class _Model:
    c: np.ndarray
    A: coo_matrix
    row_lo: np.ndarray
    row_hi: np.ndarray
    col_lo: np.ndarray
    col_hi: np.ndarray
    integrality: np.ndarray
    arcs: list[tuple[int, int, int]]  # (src, dst, class); src >= n: start node of worker src-n


def _build(d: _Data, ub: float, scale: float) -> _Model:
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
    col_lo[col_C] = d.static_bound() * s
    col_hi[col_C] = ubs * s
    cost = np.zeros(ncol)
    cost[col_C] = 1.0
    integ = np.zeros(ncol, dtype=np.uint8)
    integ[:A] = 1
    return _Model(cost, mat, np.array([r[1] for r in rows]), np.array([r[2] for r in rows]),
                  col_lo, col_hi, integ, arcs)


def _start_values(d: _Data, m: _Model, orders: list[list[int]], scale: float) -> np.ndarray | None:
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


def _solve_highspy(m: _Model, start: np.ndarray | None, time_limit: float
                   ) -> tuple[str, np.ndarray | None, float]:
    import highspy

    h = highspy.Highs()
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
    for opt, val in (("time_limit", max(time_limit, 0.01)), ("mip_rel_gap", _REL_GAP),
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


def _solve_scipy(m: _Model, time_limit: float) -> tuple[str, np.ndarray | None, float]:
    from scipy.optimize import Bounds, LinearConstraint, milp

    res = milp(m.c, integrality=m.integrality, bounds=Bounds(m.col_lo, m.col_hi),
               constraints=LinearConstraint(m.A.tocsr(), m.row_lo, m.row_hi),
               options={"time_limit": max(time_limit, 0.01), "mip_rel_gap": _REL_GAP,
                        "disp": False})
    bound = float(getattr(res, "mip_dual_bound", -math.inf) or -math.inf)
    status = {0: "optimal", 1: "time_limit", 2: "infeasible"}.get(res.status, "error")
    return status, (None if res.x is None else np.asarray(res.x)), bound


def _orders_from(d: _Data, m: _Model, x: np.ndarray) -> list[list[int]] | None:
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


def solve_exact(inst: CallInstance, cost: TokenStepCost, workers: int = 1, *,
                time_limit_s: float = 60.0, warm_start: list[list[int]] | None = None,
                upper_bound: float | None = None) -> MilpResult:
    """Minimize T(σ) (Eq. 5) over worker assignments and orders, exactly for small instances.

    `warm_start`: per-worker orders to start from (used as the MIP start when better than the
    built-in heuristic). `upper_bound`: a makespan the caller knows to be achievable; if it
    is below every schedule the heuristics find and no schedule reaches it, the status is
    "infeasible", `bound` is `upper_bound` and the best schedule found is returned.
    `time_limit_s` covers the heuristic, the model build and the HiGHS run.
    """
    t0 = time.perf_counter()
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if len(cost.capacities) < workers:
        raise ValueError(f"cost has {len(cost.capacities)} worker capacities, need {workers}")
    n = len(inst)
    if n == 0:
        return MilpResult("optimal", 0.0, 0.0, [[] for _ in range(workers)], 0.0, 0.0)
    d = _Data(inst, cost, workers)
    extra: list[list[list[int]]] = []
    if warm_start is not None:
        if len(warm_start) != workers:
            raise ValueError(f"warm_start has {len(warm_start)} worker orders, need {workers}")
        if d.times(warm_start) is None:
            raise ValueError("warm_start violates a dependency or misses calls")
        extra.append([list(o) for o in warm_start])
    budget = min(2.0, 0.05 * time_limit_s) * (1.0 if n > 8 else 0.3)
    best, best_orders = _heuristic(d, budget, extra)
    best_orders = _canonical(d, best_orders)
    ub = best if upper_bound is None else min(best, float(upper_bound))
    lb = d.static_bound()
    scale = max(ub, 1e-9) / _TARGET
    if lb >= ub * (1 - _REL_GAP):
        status, bound, orders = "optimal", lb, best_orders
    else:
        model = _build(d, ub, scale)
        start = _start_values(d, model, best_orders, scale) if best <= ub else None
        remaining = time_limit_s - (time.perf_counter() - t0)
        try:
            import highspy  # noqa: F401
            status, x, dual = _solve_highspy(model, start, remaining)
        except ImportError:
            status, x, dual = _solve_scipy(model, remaining)
        orders = best_orders
        if x is not None:
            o = _orders_from(d, model, x)
            if o is not None and d.makespan(o) <= d.makespan(best_orders):
                orders = o
        if status == "infeasible":
            bound = ub
        else:
            bound = max(lb, dual * scale if math.isfinite(dual) else lb)
    mk = evaluate(inst, cost, orders).makespan
    if status in ("optimal", "time_limit"):
        bound = min(bound, mk)
    gap = (mk - bound) / mk if mk > 0 else 0.0
    if status == "time_limit" and gap <= _REL_GAP:
        status = "optimal"
    return MilpResult(status, mk, bound, [list(o) for o in orders],
                      time.perf_counter() - t0, max(gap, 0.0))


__all__ = ["MilpResult", "solve_exact"]
