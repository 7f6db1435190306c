"""Branch and bound over one worker's orders: the fast exact engine of Table 5's sizes.

`SingleWorkerBnB` searches depth-first over dependency-feasible orders with Jackson's-
preemptive-schedule bounds (`jackson_bound`; one of them charging each TRT node's tokens
once to the cheapest call that can enter it), Pareto dominance on (scheduled set, last
call) states, and the query symmetry breaking of `PreparedInstance.orbits`. On the Table 5
sizes it is far faster than the MILP; `solve_exact(method="auto")` runs it first, then the
MILP, then resumes it (see `solve.solve_exact`).
"""

from __future__ import annotations

import heapq
import itertools
import math
import time

from helium_lab.scheduling.exact.instance import PreparedInstance

_MAX_MEMO = 2_000_000  # B&B dominance labels kept (each a few hundred bytes)


def jackson_bound(items: list[tuple[float, float, float]]) -> float:
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


class SingleWorkerBnB:
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

    def __init__(self, d: PreparedInstance, order: list[int], makespan: float,
                 cutoff: float) -> None:
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
        lb = jackson_bound([(h[j], pp[j], q[j]) for j in R])
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
        lb2 = jackson_bound(items)
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

