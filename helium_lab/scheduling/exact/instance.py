"""`PreparedInstance`: a `CallInstance` tabulated for the exact solvers.

Both exact engines (`branch_and_bound`, `milp`) and the incumbent search read the instance
through it: usage and delay tables per worker *class* (workers with the same
(usage, delay) scale), the dependency closure (ancestors, descendants, a topological
order), heads r (earliest start) and tails q (least time from completion to the
makespan) from dependency chains with minimal usages and delays and from energy, the
weighted TRT nodes above the calls, and the interchangeable query blocks (orbits) that
the searches break symmetry on. Schedules are evaluated with `tokensteps.earliest_times`,
the one definition of Eq. 5, fed with these tables.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from helium_lab.cost import TokenStepCost
from helium_lab.scheduling.tokensteps import CallInstance, earliest_times
from helium_lab.trt.tree import Node

_MAX_SYMMETRY_CALLS = 200  # larger instances skip the query-orbit detection


class PreparedInstance:
    """Usage and delay matrices per worker class, dependency closure, heads and tails.

    `U[k][i, j]`: usage of call j right after call i on a worker of class k, with i = n for
    the worker's first call (full prompt); `D[k][j]`: delay of j's output on class k.
    """

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

    # -- T(σ): Eq. 5 (tokensteps.earliest_times) on the tables -------------------------------
    def times(self, orders: Sequence[Sequence[int]]
              ) -> tuple[float, list[float], list[float]] | None:
        """(T(σ), start, end) of fixed per-worker orders, or None if they deadlock."""
        t = earliest_times(orders, self.deps, self.usage, self.delay)
        if t is None:
            return None
        start, end = t
        return max(end, default=0.0), start, end

    def makespan(self, orders: Sequence[Sequence[int]]) -> float:
        t = self.times(orders)
        return math.inf if t is None else t[0]
