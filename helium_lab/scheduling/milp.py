"""Exact solver of Eq. 5 (PAPER.md §4.1) for small call-level instances.

It gives the reference optimum σ* of the optimality study (§4.5, Table 5; Eq. 6's gap).
Two exact engines share one model of Eq. 5 and a heuristic incumbent:

MILP (HiGHS), any number of workers. Times in token steps, rescaled so that UB ≈ 1e3.

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
  moves), the caller's `warm_start` and `upper_bound`, passed to HiGHS as a MIP start. It
  gives C ≤ UB, time windows b_j ∈ [r_j, UB − q_j − p^min_j] (r: heads, q: tails, from
  dependency chains with minimal usages and delays, and energy), per-pair big-Ms
  M_ij = UB − q_i − r_j, and removes arcs that cannot fit in the windows or would run a
  descendant right before its ancestor.
* Valid inequalities: C ≥ c_j + q_j; W·C ≥ Σ_j p_j, and W·(C − t − t') ≥ Σ p_j over the calls
  with r_j ≥ t and q_j ≥ t'; W·(C − c_i − d_i) ≥ Σ p over i's descendants; W·(b_j − d) ≥ Σ p
  over j's ancestors; x[i→j] + x[j→i] ≤ 1; for the calls below each TRT node, one arc
  enters the group from outside (a subtour cut: the shared prefix is prefilled at least
  once). Symmetry breaking: identical workers are used in order of their first call's
  index; interchangeable queries (blocks of keys (op, q) whose swap maps usages, delays and
  dependencies onto themselves) start their first op in block order.

Branch and bound (`_SingleBnB`), one worker only: depth-first over dependency-feasible
orders with Jackson's-preemptive-schedule bounds (one of them charging each TRT node's
tokens once to the cheapest call that can enter it), Pareto dominance on (scheduled set,
last call) states, and the same query symmetry breaking. On the Table 5 sizes it is far
faster than the MILP; `solve_exact(method="auto")` runs it first, then the MILP, then
resumes it (see `solve_exact`).

The MILP goes through `highspy` (a HiGHS binding installed in the venv) so that the
incumbent is a MIP start (`setSolution`); without `highspy` it falls back to
`scipy.optimize.milp` (the same HiGHS, no MIP start: UB and the big-Ms still come from the
incumbent). The reported makespan is always T(σ) of the returned orders re-evaluated with
`tokensteps.evaluate`.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.sparse import coo_matrix

from helium_lab.cost import TokenStepCost
from helium_lab.scheduling.refine import relocate
from helium_lab.scheduling.tokensteps import CallInstance, evaluate
from helium_lab.trt.tree import Node

_TARGET = 1000.0  # internal time scale: UB maps to this
_REL_GAP = 1e-6
_MAX_SYMMETRY_CALLS = 200
_MAX_MEMO = 2_000_000  # B&B dominance labels kept (each a few hundred bytes)


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
        self.nodes = self._tree_nodes(inst)
        # calls sharing a prefix (2 <= size < n), for the MILP's group-entry cuts
        self.groups = sorted({tuple(sorted(m)) for _, _, m in self.nodes if 2 <= len(m) < n},
                             key=lambda g: (len(g), g))
        # prefill(i, j) with i = n for the start node (full prompt)
        pre = np.zeros((n + 1, n))
        for j in range(n):
            pre[n, j] = inst.prefill(None, j)
            for i in range(n):
                if i != j:
                    pre[i, j] = inst.prefill(i, j)
        lo = self.lo = [float(x) for x in inst.len_out]
        self.dec = [cost.usage(0.0, lo[j], self.rep[0]) for j in range(n)]  # class 0 only
        # usage of entering each TRT node, per member call (class 0 only; the B&B is 1-worker)
        self.enter = [[cost.usage(w, lo[j], self.rep[0]) - self.dec[j] for j in members]
                      for w, _, members in self.nodes]
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
        self.orbits = self._query_orbits(inst) if n <= _MAX_SYMMETRY_CALLS else []

    def _tree_nodes(self, inst: CallInstance) -> list[tuple[float, int, list[int]]]:
        """(tokens, call bitmask, calls by len_out) for each weighted TRT node above a call."""
        index = {k: i for i, k in enumerate(inst.keys)}
        lo = inst.len_out
        out: list[tuple[float, int, list[int]]] = []

        def walk(node: Node) -> set[int]:
            calls = {index[k] for k in node.leaves if k in index}
            for child in node.children.values():
                calls |= walk(child)
            if node.weight > 0 and calls:
                out.append((float(node.weight), sum(1 << j for j in calls),
                            sorted(calls, key=lambda j: (lo[j], j))))
            return calls

        for root in inst.tree.roots.values():
            walk(root)
        return out

    def _query_orbits(self, inst: CallInstance) -> list[list[list[int]]]:
        """Interchangeable queries: blocks of calls (keys (op, query), aligned by op) such that
        swapping two blocks of an orbit maps the instance onto itself (usages, delays and
        dependencies). Any schedule can then be relabelled so that the blocks of an orbit
        come in a fixed order, which both searches impose to cut symmetric branches."""
        blocks: dict[object, dict[object, int]] = {}
        for j, key in enumerate(inst.keys):
            if not isinstance(key, tuple) or len(key) != 2:
                return []
            blocks.setdefault(key[1], {})[key[0]] = j
        orbits: list[list[list[int]]] = []
        for qry in blocks:
            ops = sorted(blocks[qry], key=str)
            block = [blocks[qry][o] for o in ops]
            for orbit in orbits:
                rep = orbit[0]
                ops0 = [inst.keys[j][0] for j in rep]
                if ops0 == ops and self._swappable(rep, block):
                    orbit.append(block)
                    break
            else:
                orbits.append([block])
        return [o for o in orbits if len(o) > 1]

    def _swappable(self, a: list[int], b: list[int]) -> bool:
        n = self.n
        perm = list(range(n + 1))
        for x, y in zip(a, b, strict=True):
            perm[x], perm[y] = y, x
        for j in range(n):
            if sorted(perm[i] for i in self.deps[j]) != self.deps[perm[j]]:
                return False
        for k in range(self.K):
            U, D = self.U[k], self.D[k]
            if not np.array_equal(D[perm[:n]], D):
                return False
            if not np.array_equal(U[np.ix_(perm, perm[:n])], U):
                return False
        return True

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
        m, o2 = relocate(d.makespan, [list(x) for x in o], deadline, across_workers=True)
        if m < best:
            best, best_orders = m, o2
    return best, best_orders


def _canonical(d: _Data, orders: list[list[int]]) -> list[list[int]]:
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


# -- one worker: depth-first branch and bound --------------------------------------------
def _jackson(items: list[tuple[float, float, float]]) -> float:
    """Jackson's preemptive schedule of (head, processing, tail) jobs: max(completion + tail),
    the optimum of the preemptive one-machine relaxation (a lower bound on the makespan)."""
    items.sort()
    heap: list[list[float]] = []
    k, m = 0, len(items)
    now = lb = 0.0
    while k < m or heap:
        if not heap and now < items[k][0]:
            now = items[k][0]
        while k < m and items[k][0] <= now:
            heapq.heappush(heap, [-items[k][2], items[k][1]])
            k += 1
        top = heap[0]
        nxt = items[k][0] if k < m else math.inf
        if now + top[1] <= nxt:
            now += top[1]
            heapq.heappop(heap)
            if now - top[0] > lb:
                lb = now - top[0]
        else:
            top[1] -= nxt - now
            now = nxt
    return lb


class _SingleBnB:
    """Exact search over dependency-feasible orders of one worker.

    Depth-first; a node is a prefix of the order (scheduled set S, last call l, clock t,
    release times its users inherited). Children are ranked by a lower bound: Jackson's
    preemptive schedule of the remaining calls with heads/tails from dependency chains and
    energy, once with each call's cheapest possible usage given the remaining predecessors,
    once splitting usage by TRT node (a node's tokens are paid at least once, by the call
    with the shortest output that enters it, unless the last call already holds it).
    States (sched, l) keep Pareto labels (clock, pending releases) to drop dominated prefixes.
    Resumable: `run` continues where the last call stopped.
    """

    def __init__(self, d: _Data, order: list[int], makespan: float, cutoff: float) -> None:
        n = self.n = d.n
        self.d = d
        self.U = [[float(x) for x in row] for row in d.U[0]]
        self.D = [float(x) for x in d.D[0]]
        self.depmask = [sum(1 << i for i in d.deps[j]) for j in range(n)]
        self.descm = [sum(1 << k for k in d.desc[j]) for j in range(n)]
        self.ancm = [sum(1 << k for k in d.anc[j]) for j in range(n)]
        self.preds = [sorted((self.U[i][j], i) for i in [*range(n), n]
                             if i != j and i not in d.desc[j]) for j in range(n)]
        self.nodes = [(mask, members, dict(zip(members, costs, strict=True)))
                      for (_, mask, members), costs in zip(d.nodes, d.enter, strict=True)]
        self.full = (1 << n) - 1
        self.gate = [0] * n  # query symmetry: a block starts only after the previous one
        for orbit in d.orbits:
            for prev, block in itertools.pairwise(orbit):
                both = sum(1 << j for j in prev + block)
                for j in block:
                    self.gate[j] = both
        self.best, self.order = makespan, list(order)
        self.cutoff = min(makespan, cutoff)
        self.memo: dict[tuple[int, int], list[tuple[float, ...]]] = {}
        self.labels = 0  # labels held in `memo`
        self.expanded = 0
        root = self.lower(0, n, 0.0, [0.0] * n)
        self.root_bound = root
        self.stack: list[tuple[float, int, int, float, list[float], list[int]]] = [
            (root, 0, n, 0.0, [0.0] * n, [])]

    def lower(self, sched: int, last: int, t: float, rel: list[float]) -> float:
        d, n, D = self.d, self.n, self.D
        rm = self.full & ~sched
        R = [j for j in d.topo if (rm >> j) & 1]
        pp = [0.0] * n
        for j in R:
            for u, i in self.preds[j]:
                if i == last or (i < n and (rm >> i) & 1):
                    pp[j] = u
                    break
        h = [0.0] * n
        for j in R:
            v = t if t > rel[j] else rel[j]
            dm = math.inf
            for i in d.deps[j]:
                if (rm >> i) & 1:
                    x = h[i] + pp[i] + D[i]
                    v = x if x > v else v
                    dm = D[i] if D[i] < dm else dm
            if dm < math.inf:
                a = self.ancm[j] & rm
                x = t + dm + sum(pp[i] for i in R if (a >> i) & 1)
                v = x if x > v else v
            h[j] = v
        q = [0.0] * n
        for j in reversed(R):
            if d.users[j]:
                v = max(pp[k] + q[k] for k in d.users[j])
                dd = self.descm[j]
                x = sum(pp[k] for k in R if (dd >> k) & 1)
                q[j] = D[j] + (v if v > x else x)
        lb = _jackson([(h[j], pp[j], q[j]) for j in R])
        own = [d.dec[j] for j in range(n)]
        items: list[tuple[float, float, float]] = []
        held = 1 << last if last < n else 0
        for mask, members, enter in self.nodes:
            mr = mask & rm
            if not mr or mask & held:
                continue
            if mr & (mr - 1) == 0:
                j = mr.bit_length() - 1
                own[j] += enter[j]
            else:
                inside = [j for j in members if (mr >> j) & 1]
                items.append((min(h[j] for j in inside), enter[inside[0]],
                              min(q[j] for j in inside)))
        items.extend((h[j], own[j], q[j]) for j in R)
        lb2 = _jackson(items)
        return max(lb, lb2, t)

    def bound(self) -> float:
        return min([self.best, *(e[0] for e in self.stack)])

    def run(self, deadline: float) -> bool:
        """Search until done (True: `best` is optimal below the cutoff) or the deadline."""
        n, U, D, full = self.n, self.U, self.D, self.full
        users = self.d.users
        while self.stack:
            if time.perf_counter() > deadline:
                return False
            lb, sched, last, t, rel, seq = self.stack.pop()
            limit = min(self.best, self.cutoff) * (1 - 1e-9)
            if lb >= limit:
                continue
            self.expanded += 1
            if sched == full:
                self.best, self.order = t, seq
                continue
            lab = (t, *(rel[j] if rel[j] > t else t for j in range(n)
                        if not (sched >> j) & 1 and self.depmask[j] & sched))
            if self.labels > _MAX_MEMO:  # dominance is optional: bound the memory
                self.memo.clear()
                self.labels = 0
            labels = self.memo.setdefault((sched, last), [])
            if any(all(a <= b for a, b in zip(o, lab, strict=True)) for o in labels):
                continue
            kept = [o for o in labels if not all(b <= a for a, b in zip(o, lab, strict=True))]
            self.labels += len(kept) + 1 - len(labels)
            labels[:] = kept
            labels.append(lab)
            children = []
            for j in range(n):
                if (sched >> j) & 1 or self.depmask[j] & ~sched:
                    continue
                if self.gate[j] and not self.gate[j] & sched:
                    continue
                c = (t if t > rel[j] else rel[j]) + U[last][j]
                nrel = rel
                if users[j]:
                    nrel = list(rel)
                    for k in users[j]:
                        if c + D[j] > nrel[k]:
                            nrel[k] = c + D[j]
                s2 = sched | (1 << j)
                clb = c if s2 == full else self.lower(s2, j, c, nrel)
                if clb < limit:
                    children.append((clb, s2, j, c, nrel, [*seq, j]))
            children.sort(key=lambda e: -e[0])
            self.stack.extend(children)
        return True


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


def _build(d: _Data, ub: float, scale: float, lb: float = 0.0) -> _Model:
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
    dual = getattr(res, "mip_dual_bound", None)
    bound = -math.inf if dual is None else float(dual)
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


def _run_milp(d: _Data, ub: float, lb: float, incumbent: list[list[int]] | None,
              time_limit: float) -> tuple[str, list[list[int]] | None, float]:
    """One HiGHS run: status, the solution's orders (if any), proven lower bound."""
    scale = max(ub, 1e-9) / _TARGET
    model = _build(d, ub, scale, lb)
    start = None if incumbent is None else _start_values(d, model, _canonical(d, incumbent),
                                                          scale)
    try:
        import highspy  # noqa: F401
    except ImportError:
        status, x, dual = _solve_scipy(model, time_limit)
    else:
        status, x, dual = _solve_highspy(model, start, time_limit)
    orders = None if x is None else _orders_from(d, model, x)
    bound = ub if status == "infeasible" else max(lb, dual * scale if math.isfinite(dual) else lb)
    return status, orders, bound


def solve_exact(inst: CallInstance, cost: TokenStepCost, workers: int = 1, *,
                time_limit_s: float = 60.0, warm_start: list[list[int]] | None = None,
                upper_bound: float | None = None,
                method: Literal["auto", "milp", "bnb"] = "auto") -> MilpResult:
    """Minimize T(σ) (Eq. 5) over worker assignments and orders, exactly for small instances.

    `method`: "milp" solves the MILP of the module docstring with HiGHS; "bnb" (one worker
    only) runs the depth-first branch and bound `_SingleBnB`; "auto" uses the MILP for
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
    d = _Data(inst, cost, workers)
    extra: list[list[list[int]]] = []
    if warm_start is not None:
        if len(warm_start) != workers:
            raise ValueError(f"warm_start has {len(warm_start)} worker orders, need {workers}")
        if sorted(j for o in warm_start for j in o) != list(range(n)) or \
                d.times(warm_start) is None:
            raise ValueError("warm_start must hold every call once, in dependency order")
        extra.append([list(o) for o in warm_start])
    budget = min(2.0, 0.05 * time_limit_s) * (1.0 if n > 8 else 0.3)
    best, orders = _heuristic(d, budget, extra)
    orders = _canonical(d, orders)
    cutoff = best if upper_bound is None else min(best, float(upper_bound))
    lb = d.static_bound()
    status = "time_limit"
    bnb: _SingleBnB | None = None
    if workers == 1 and method != "milp":
        bnb = _SingleBnB(d, orders[0], best, cutoff)
        lb = max(lb, bnb.root_bound)
    if lb >= cutoff * (1 - _REL_GAP):
        status = "optimal" if cutoff >= best * (1 - _REL_GAP) else "infeasible"
    elif bnb is not None:
        frac = 1.0 if method == "bnb" else 1.0 / 3.0
        proved = bnb.run(time.perf_counter() + frac * (deadline - time.perf_counter()))
        if bnb.best < best:
            best, orders = bnb.best, [bnb.order]
        lb = max(lb, min(bnb.bound(), cutoff))
        if proved:
            status = "optimal" if best <= cutoff * (1 + _REL_GAP) else "infeasible"
    if status == "time_limit" and method != "bnb":
        remaining = deadline - time.perf_counter()
        if bnb is not None:
            remaining /= 2.0
        ub = min(best, cutoff)
        status, found, bound = _run_milp(d, ub, lb, orders if best <= ub else None,
                                         max(remaining, 0.01))
        lb = max(lb, bound)
        if found is not None and d.makespan(found) < best:
            best, orders = d.makespan(found), found
        if status == "optimal" and best > cutoff * (1 + _REL_GAP):
            status = "infeasible"
        if bnb is not None and status not in ("optimal", "infeasible"):
            if best < bnb.best:
                bnb.best, bnb.order = best, list(orders[0])
            proved = bnb.run(deadline)
            if bnb.best < best:
                best, orders = bnb.best, [bnb.order]
            lb = max(lb, min(bnb.bound(), cutoff))
            status = ("optimal" if best <= cutoff * (1 + _REL_GAP) else "infeasible") \
                if proved else "time_limit"
    mk = evaluate(inst, cost, orders).makespan
    bound = lb if status == "infeasible" else min(max(lb, 0.0), mk)
    if status == "optimal":
        bound = mk
    gap = max((mk - bound) / mk, 0.0) if mk > 0 else 0.0
    if status == "time_limit" and gap <= _REL_GAP:
        status, bound, gap = "optimal", mk, 0.0
    return MilpResult(status, mk, bound, [list(o) for o in orders],
                      time.perf_counter() - t0, gap)


__all__ = ["MilpResult", "solve_exact"]
