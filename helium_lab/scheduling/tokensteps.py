"""Call-level evaluation under the token-step model: T(σ) of Eq. 5, and list scheduling.

`CallInstance` is the call-level view of a plan: one entry per LLM call with its estimated
output length, its direct LLM dependencies and its leaf in the call-level TRT (which gives
Eq. 1's prefill against whichever call ran before it on the same worker).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

from helium_lab.cost import TokenStepCost
from helium_lab.plan import Plan
from helium_lab.tokenizer import Tokenizer, token_count
from helium_lab.trt.build import SlotLengths, call_trt
from helium_lab.trt.tree import TemplatedRadixTree


@dataclass
class CallInstance:
    tree: TemplatedRadixTree
    keys: list[tuple[str, int]]
    len_out: list[float]
    deps: list[list[int]]
    users: list[list[int]]
    op_pos: list[int]

    @staticmethod
    def from_plan(plan: Plan, tokenizer: Tokenizer) -> CallInstance:
        lengths = SlotLengths(plan, lambda s: token_count(tokenizer, s))
        tree = call_trt(plan, tokenizer, lengths=lengths)
        keys: list[tuple[str, int]] = list(tree.leaves)  # type: ignore[arg-type]
        index = {k: i for i, k in enumerate(keys)}
        topo = {op.id: i for i, op in enumerate(plan.llm_ops)}
        deps = [[index[d] for d in tree.leaves[k].deps] for k in keys]  # type: ignore[index]
        users: list[list[int]] = [[] for _ in keys]
        for j, ds in enumerate(deps):
            for i in ds:
                users[i].append(j)
        return CallInstance(tree, keys, [lengths(k[0]) for k in keys], deps, users,
                            [topo[k[0]] for k in keys])

    def __len__(self) -> int:
        return len(self.keys)

    def prefill(self, prev: int | None, cur: int) -> float:
        """Eq. 1 for call `cur` right after `prev` on the same worker (None: first)."""
        p: Hashable | None = None if prev is None else self.keys[prev]
        return self.tree.prefill_weight(p, self.keys[cur])


@dataclass
class Evaluation:
    makespan: float
    start: list[float]
    end: list[float]
    orders: list[list[int]]


# Eq. 1-3's usage of call j on worker w right after `prev` (None: first on w), and Eq. 4's
# delay of call i's output when i ran on worker w.
UsageFn = Callable[[int | None, int, int], float]
DelayFn = Callable[[int, int], float]


def _cost_model(inst: CallInstance, cost: TokenStepCost) -> tuple[UsageFn, DelayFn]:
    """Eqs. 1-4 on the instance: the usage and delay functions of the cost model."""
    return (lambda prev, j, w: cost.usage(inst.prefill(prev, j), inst.len_out[j], w),
            lambda i, w: cost.delay(inst.len_out[i], w))


def earliest_times(orders: Sequence[Sequence[int]], deps: Sequence[Sequence[int]],
                   usage: UsageFn, delay: DelayFn
                   ) -> tuple[list[float], list[float]] | None:
    """Eq. 5's constraints for fixed per-worker orders σ: the earliest start and end of every
    call, or None when the orders deadlock (a call waits for an input ordered after it).

    A call starts when its worker is free and every input has ended plus the delay of its
    producer's worker (Eq. 4), and runs for its usage after the previous call on its worker
    (Eqs. 1-3). The one definition of T(σ): `evaluate_orders` calls it with the cost model, the
    exact solvers (`exact.instance`) with the same usages and delays tabulated.
    """
    n = len(deps)
    start, end = [0.0] * n, [-1.0] * n
    ran_on = [0] * n  # the producer's worker sets its delay (Eq. 4)
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
                for i in deps[j]:
                    if end[i] < 0:  # an input has not run yet
                        blocked = True
                        break
                    b = max(b, end[i] + delay(i, ran_on[i]))
                if blocked:
                    break
                ran_on[j] = w
                start[j] = b
                end[j] = clock[w] = b + usage(prev[w], j, w)
                prev[w] = j
                pos[w] += 1
                done += 1
                progressed = True
        if not progressed:
            return None
    return start, end


def evaluate_orders(inst: CallInstance, cost: TokenStepCost,
             orders: Sequence[Sequence[int]]) -> Evaluation:
    """Earliest start times for fixed per-worker orders σ (Eq. 5's constraints) and T(σ)."""
    n = len(inst)
    seen = sorted(i for o in orders for i in o)
    if seen != list(range(n)):
        raise ValueError("orders must contain every call exactly once")
    times = earliest_times(orders, inst.deps, *_cost_model(inst, cost))
    if times is None:
        raise ValueError("the orders violate a dependency (a call precedes its input)")
    start, end = times
    return Evaluation(max(end, default=0.0), start, end, [list(o) for o in orders])


Chooser = Callable[[list[int], "int | None", int], int]


def list_orders(deps: Sequence[Sequence[int]], users: Sequence[Sequence[int]], workers: int,
                choose: Chooser, usage: UsageFn, delay: DelayFn,
                assign: Sequence[int] | None = None
                ) -> tuple[list[list[int]], list[float], list[float]]:
    """Non-delay list scheduling: each time a worker frees up (the earliest-free one first,
    the lowest index among equals), `choose(avail, prev, w)` picks among the calls it may
    run (`assign[j] == w`, or any without `assign`) that are ready now, or earliest if none
    is; `avail` is sorted. Returns the per-worker orders and every call's start and end.
    The one list scheduler: `list_schedule` calls it with the cost model, the exact
    solvers' incumbent search (`exact.incumbent`) with tabulated usages and delays."""
    n = len(deps)
    est = [0.0] * n
    missing = [len(d) for d in deps]
    ready = {j for j in range(n) if missing[j] == 0}
    clock = [0.0] * workers
    prev: list[int | None] = [None] * workers
    orders: list[list[int]] = [[] for _ in range(workers)]
    start, end = [0.0] * n, [0.0] * n
    for _ in range(n):
        best = None
        for w in sorted(range(workers), key=lambda x: clock[x]):
            cands = [j for j in ready if assign is None or assign[j] == w]
            if cands:
                best = (w, cands)
                break
        assert best is not None, "no ready call: the dependency graph has a cycle"
        w, cands = best
        t = max(clock[w], min(est[j] for j in cands))
        avail = sorted(j for j in cands if est[j] <= t)
        j = choose(avail, prev[w], w)
        start[j] = max(t, est[j])
        end[j] = clock[w] = start[j] + usage(prev[w], j, w)
        prev[w] = j
        orders[w].append(j)
        ready.discard(j)
        for k in users[j]:
            est[k] = max(est[k], end[j] + delay(j, w))
            missing[k] -= 1
            if missing[k] == 0:
                ready.add(k)
    return orders, start, end


def list_schedule(inst: CallInstance, cost: TokenStepCost, workers: int,
                  choose: Chooser, assign: Sequence[int] | None = None) -> Evaluation:
    """`list_orders` under the cost model, and T(σ) of the orders it makes."""
    orders, start, end = list_orders(inst.deps, inst.users, workers, choose,
                                     *_cost_model(inst, cost), assign)
    return Evaluation(max(end, default=0.0), start, end, orders)
