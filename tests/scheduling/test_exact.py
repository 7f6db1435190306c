"""The exact solver of Eq. 5 (helium_lab/scheduling/exact/) against brute force."""

from __future__ import annotations

import contextlib
import functools
import itertools
import math
import random
import sys

import numpy as np
import pytest

from helium_lab.cost import TokenStepCost
from helium_lab.scheduling.exact import MilpResult, solve_exact
from helium_lab.scheduling.exact.branch_and_bound import SingleWorkerBnB
from helium_lab.scheduling.exact.incumbent import canonical
from helium_lab.scheduling.exact.instance import PreparedInstance
from helium_lab.scheduling.exact.milp import build_model, run_milp, start_values
from helium_lab.scheduling.tokensteps import CallInstance, evaluate_orders
from helium_lab.trt.tree import TemplatedRadixTree

Atom = int | tuple[tuple[str, int], float]  # a token id, or a placeholder (key, weight)
Call = tuple[tuple[str, int], list[Atom], list[tuple[str, int]], float]


def build(calls: list[Call]) -> CallInstance:
    """A CallInstance from (key, template atoms, dependency keys, len_out) in insertion order."""
    tree = TemplatedRadixTree()
    for key, atoms, inputs, _ in calls:
        ids = [a if isinstance(a, int) else tree.slot(*a) for a in atoms]
        tree.add(key, ids, deps=inputs)
    keys = [c[0] for c in calls]
    index = {k: i for i, k in enumerate(keys)}
    deps = [[index[d] for d in c[2]] for c in calls]
    users: list[list[int]] = [[] for _ in calls]
    for j, ds in enumerate(deps):
        for i in ds:
            users[i].append(j)
    ops = sorted({k[0] for k in keys})
    return CallInstance(tree, keys, [c[3] for c in calls], deps, users,
                        [ops.index(k[0]) for k in keys])


def random_instance(seed: int, ops: int, queries: int, p_dep: float = 0.5,
                    symmetric: bool = False) -> CallInstance:
    """Agents × queries: call (op, q) = op's system prompt + q's question + its inputs' slots.

    `symmetric`: every query has the same question length (interchangeable query blocks)."""
    rng = random.Random(seed)
    fresh = itertools.count(1)
    preamble = [next(fresh) for _ in range(rng.randint(0, 8))]
    system = [preamble + [next(fresh) for _ in range(rng.randint(2, 40))] for _ in range(ops)]
    qlen = rng.randint(2, 20)
    questions = [[next(fresh) for _ in range(qlen if symmetric else rng.randint(2, 20))]
                 for _ in range(queries)]
    out = [float(rng.randint(1, 12)) for _ in range(ops)]
    op_deps = [[d for d in range(o) if rng.random() < p_dep] for o in range(ops)]
    calls: list[Call] = []
    for q in range(queries):
        for o in range(ops):
            slots: list[Atom] = [((f"op{d}", q), out[d]) for d in op_deps[o]]
            calls.append(((f"op{o}", q), [*system[o], *questions[q], *slots],
                          [(f"op{d}", q) for d in op_deps[o]], out[o]))
    return build(calls)


def brute_force(inst: CallInstance, cost: TokenStepCost, workers: int) -> float:
    """min T(σ) over every assignment and dependency-feasible order."""
    n = len(inst)
    best = math.inf
    for perm in itertools.permutations(range(n)):
        if workers == 1:
            pos = {j: p for p, j in enumerate(perm)}
            if any(pos[i] > pos[j] for j in range(n) for i in inst.deps[j]):
                continue
            best = min(best, evaluate_orders(inst, cost, [list(perm)]).makespan)
            continue
        for cuts in itertools.combinations_with_replacement(range(n + 1), workers - 1):
            bounds = [0, *cuts, n]
            orders = [list(perm[a:b]) for a, b in itertools.pairwise(bounds)]
            with contextlib.suppress(ValueError):  # ValueError: the orders deadlock
                best = min(best, evaluate_orders(inst, cost, orders).makespan)
    return best


def check_result(inst: CallInstance, cost: TokenStepCost, workers: int,
                 res: MilpResult) -> None:
    """Orders hold every call once, respect dependencies, and evaluate_orders() gives the
    makespan."""
    assert len(res.orders) == workers
    assert sorted(j for o in res.orders for j in o) == list(range(len(inst)))
    ev = evaluate_orders(inst, cost, res.orders)
    assert ev.makespan == pytest.approx(res.makespan, rel=1e-12)
    assert res.bound <= res.makespan * (1 + 1e-9)
    assert 0.0 <= res.mip_gap <= 1.0


COSTS = [TokenStepCost((4,)), TokenStepCost((32,)), TokenStepCost((8192,))]
# (seed, ops, queries, cost): 6-7 calls, p_dep = 0.6; the first five are cases where the
# list-scheduling + local-search heuristic misses the optimum or the root bound is not tight
CASES = [(4, 2, 3, 1), (19, 2, 3, 1), (0, 3, 2, 1), (5, 3, 2, 1), (12, 7, 1, 1), (20, 3, 2, 0),
         (13, 6, 1, 0), (10, 3, 2, 2)]


@functools.cache
def case(i: int) -> tuple[CallInstance, TokenStepCost, float]:
    seed, ops, queries, c = CASES[i]
    inst = random_instance(seed, ops, queries, p_dep=0.6)
    return inst, COSTS[c], brute_force(inst, COSTS[c], 1)


@pytest.mark.parametrize("method", ["auto", "milp", "bnb"])
@pytest.mark.parametrize("i", range(len(CASES)))
def test_one_worker_matches_brute_force(i: int, method: str) -> None:
    inst, cost, opt = case(i)
    res = solve_exact(inst, cost, 1, time_limit_s=30, method=method)  # type: ignore[arg-type]
    assert res.status == "optimal"
    check_result(inst, cost, 1, res)
    assert res.makespan == pytest.approx(opt, rel=1e-9)
    assert res.bound == pytest.approx(res.makespan, rel=1e-6)


@pytest.mark.parametrize("i", range(len(CASES)))
def test_search_engines_without_a_good_incumbent(i: int) -> None:
    """Started from a poor order (topological by index), both searches reach the optimum."""
    inst, cost, opt = case(i)
    d = PreparedInstance(inst, cost, 1)
    poor = [sorted(range(len(inst)), key=lambda j: (len(d.anc[j]), j))]
    ub = d.makespan(poor)
    bnb = SingleWorkerBnB(d, poor[0], ub, ub)
    assert bnb.run(math.inf)
    assert bnb.best == pytest.approx(opt, rel=1e-9)
    assert bnb.root_bound <= opt * (1 + 1e-9)
    status, orders, bound = run_milp(d, ub, 0.0, None, 30.0)
    assert status == "optimal" and orders is not None
    assert d.makespan(orders) == pytest.approx(opt, rel=1e-6)
    assert bound <= opt * (1 + 1e-6)


@pytest.mark.parametrize("seed", range(4))
def test_two_workers_match_brute_force(seed: int) -> None:
    ops, queries = [(5, 1), (2, 2), (4, 1), (2, 2)][seed]
    inst = random_instance(10 + seed, ops, queries, p_dep=0.5)
    cost = TokenStepCost.uniform(2, capacity=[4, 32, 8192, 16][seed])
    res = solve_exact(inst, cost, 2, time_limit_s=30)
    assert res.status == "optimal"
    check_result(inst, cost, 2, res)
    opt = brute_force(inst, cost, 2)
    assert res.makespan == pytest.approx(opt, rel=1e-9)
    # the MILP alone, from a poor incumbent (everything on worker 0, topological)
    d = PreparedInstance(inst, cost, 2)
    ub = d.makespan([list(d.topo), []])
    status, orders, _ = run_milp(d, ub, 0.0, None, 30.0)
    assert status == "optimal" and orders is not None
    assert d.makespan(orders) == pytest.approx(opt, rel=1e-6)


def test_heterogeneous_workers_match_brute_force() -> None:
    # α = 1/M: usages differ per worker, delays (= len_out) do not
    inst = random_instance(21, 2, 2, p_dep=0.6)
    cost = TokenStepCost((8, 64), alpha="inverse_capacity")
    res = solve_exact(inst, cost, 2, time_limit_s=30)
    assert res.status == "optimal"
    check_result(inst, cost, 2, res)
    assert res.makespan == pytest.approx(brute_force(inst, cost, 2), rel=1e-9)


def test_three_identical_workers_symmetry_breaking() -> None:
    inst = random_instance(31, 4, 1, p_dep=0.3)
    cost = TokenStepCost.uniform(3, capacity=16)
    res = solve_exact(inst, cost, 3, time_limit_s=30)
    assert res.status == "optimal"
    check_result(inst, cost, 3, res)
    assert res.makespan == pytest.approx(brute_force(inst, cost, 3), rel=1e-9)


@pytest.mark.parametrize("method", ["milp", "bnb"])
def test_interchangeable_queries(method: str) -> None:
    inst = random_instance(41, 2, 3, p_dep=1.0, symmetric=True)
    cost = TokenStepCost((8,))
    d = PreparedInstance(inst, cost, 1)
    assert [len(o) for o in d.orbits] == [3]  # three interchangeable query blocks
    res = solve_exact(inst, cost, 1, time_limit_s=30, method=method)  # type: ignore[arg-type]
    assert res.status == "optimal"
    check_result(inst, cost, 1, res)
    assert res.makespan == pytest.approx(brute_force(inst, cost, 1), rel=1e-9)


def test_valid_inequalities_keep_the_optimum() -> None:
    """Every optimal schedule (after symmetry relabelling) satisfies the MILP's rows."""
    for i in range(len(CASES)):
        inst, cost, opt = case(i)
        d = PreparedInstance(inst, cost, 1)
        scale = opt / 1000.0
        model = build_model(d, opt, scale, d.static_bound())
        for perm in itertools.permutations(range(len(inst))):
            if d.makespan([list(perm)]) > opt * (1 + 1e-12):
                continue
            x = start_values(d, model, canonical(d, [list(perm)]), scale)
            assert x is not None
            act = model.A.tocsr() @ x
            assert np.all(act >= model.row_lo - 1e-6) and np.all(act <= model.row_hi + 1e-6)
            assert np.all(x >= model.col_lo - 1e-9) and np.all(x <= model.col_hi + 1e-9)


def test_prefix_sharing_puts_sharing_calls_back_to_back() -> None:
    long_prefix = list(range(1, 401))
    calls: list[Call] = [
        (("a", 0), [*long_prefix, 1001, 1002], [], 4.0),
        (("b", 0), [2001, 2002, 2003], [], 4.0),
        (("a", 1), [*long_prefix, 1003, 1004], [], 4.0),
    ]
    inst = build(calls)
    cost = TokenStepCost((8192,))
    res = solve_exact(inst, cost, 1, time_limit_s=30)
    assert res.status == "optimal"
    order = res.orders[0]
    assert abs(order.index(0) - order.index(2)) == 1
    apart = evaluate_orders(inst, cost, [[0, 1, 2]]).makespan
    assert res.makespan < apart - 4 * 390  # the 400-token prefix is prefilled once, not twice
    # ... unless a dependency forbids it: b needs a0 and a1 needs b
    dep_calls: list[Call] = [calls[0], (("b", 0), [2001, 2002, 2003], [("a", 0)], 4.0),
                             (("a", 1), [*long_prefix, 1003, 1004], [("b", 0)], 4.0)]
    dep = build(dep_calls)
    res2 = solve_exact(dep, cost, 1, time_limit_s=30)
    assert res2.orders == [[0, 1, 2]]
    assert res2.makespan == pytest.approx(evaluate_orders(dep, cost, [[0, 1, 2]]).makespan)


@pytest.mark.parametrize("method", ["auto", "milp"])
def test_time_limit_returns_incumbent_and_bound(method: str) -> None:
    inst = random_instance(7, 5, 4, p_dep=0.5)  # 20 calls
    cost = TokenStepCost((8192,))
    res = solve_exact(inst, cost, 1, time_limit_s=0.5, method=method)  # type: ignore[arg-type]
    assert res.status in ("time_limit", "optimal")
    check_result(inst, cost, 1, res)
    assert res.solve_s < 5.0
    if res.status == "time_limit":
        assert res.mip_gap > 0
    two = solve_exact(random_instance(8, 4, 3), TokenStepCost.uniform(2), 2, time_limit_s=0.5)
    assert two.status in ("time_limit", "optimal")
    assert two.bound <= two.makespan * (1 + 1e-9)


def test_warm_start_and_upper_bound() -> None:
    inst, cost, opt = case(0)
    topo = sorted(range(len(inst)), key=lambda j: (inst.op_pos[j], j))
    order = list(topo)  # op-major order respects dependencies (ops are topological)
    res = solve_exact(inst, cost, 1, warm_start=[order], upper_bound=opt * 1.5, method="milp")
    assert res.status == "optimal" and res.makespan == pytest.approx(opt, rel=1e-9)
    low = solve_exact(inst, cost, 1, upper_bound=opt * 0.9)
    assert low.status == "infeasible"
    assert opt * 0.9 <= low.bound <= opt * (1 + 1e-9)  # proven: nothing reaches the bound
    check_result(inst, cost, 1, low)
    with pytest.raises(ValueError):
        solve_exact(inst, cost, 1, warm_start=[order[:-1]])  # a call is missing
    child = next(j for j in range(len(inst)) if inst.deps[j])
    with pytest.raises(ValueError):  # a call before its input
        solve_exact(inst, cost, 1, warm_start=[[child] + [j for j in order if j != child]])
    with pytest.raises(ValueError):
        solve_exact(inst, cost, 2, method="bnb")
    with pytest.raises(ValueError):
        solve_exact(inst, cost, 2)  # one capacity for two workers


def test_empty_instance() -> None:
    inst = CallInstance(TemplatedRadixTree(), [], [], [], [], [])
    res = solve_exact(inst, TokenStepCost.uniform(2), 2)
    assert res.status == "optimal" and res.makespan == 0.0 and res.orders == [[], []]


def test_scipy_fallback_without_highspy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "highspy", None)  # `import highspy` raises ImportError
    for i in (0, 4):
        inst, cost, opt = case(i)
        res = solve_exact(inst, cost, 1, time_limit_s=30, method="milp")
        assert res.status == "optimal"
        check_result(inst, cost, 1, res)
        assert res.makespan == pytest.approx(opt, rel=1e-9)
    inst, cost, _ = case(0)
    d = PreparedInstance(inst, cost, 1)
    poor = [sorted(range(len(inst)), key=lambda j: (len(d.anc[j]), j))]
    status, orders, _ = run_milp(d, d.makespan(poor), 0.0, None, 30.0)
    assert status == "optimal" and orders is not None
    assert d.makespan(orders) == pytest.approx(case(0)[2], rel=1e-6)
