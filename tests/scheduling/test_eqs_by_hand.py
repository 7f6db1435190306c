"""Eqs. 1-5 (PAPER.md §4.1) worked by hand on tiny instances.

Each expected number below is a literal computed in the comments, not by the code under
test; `tokensteps.evaluate_orders` (T(σ) for fixed orders) and the exact solver
(`exact.solve_exact`, the optimum over all orders) must agree with them.

Notation: ω(v) tokens of a TRT node (a placeholder weighs its estimated length), u_p
prefill (Eq. 1), u_d decode (Eq. 2), u = α(len_out·u_p + u_d) (Eq. 3), d = α·M·len_out
(Eq. 4), b / c start / completion (Eq. 5), T(σ) = max c.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import pytest

from helium_lab.cost import TokenStepCost
from helium_lab.scheduling.exact import solve_exact
from helium_lab.scheduling.tokensteps import CallInstance, evaluate_orders
from helium_lab.trt.tree import TemplatedRadixTree

Key = tuple[str, int]


def instance(calls: Sequence[tuple[Key, list[int | tuple[Hashable, float]], list[Key], float]]
             ) -> CallInstance:
    """(key, template, inputs, len_out) per call; a template atom is a token id or a
    placeholder (slot key, estimated tokens)."""
    tree = TemplatedRadixTree()
    for key, atoms, inputs, _ in calls:
        tree.add(key, [a if isinstance(a, int) else tree.slot(*a) for a in atoms], deps=inputs)
    keys = [c[0] for c in calls]
    deps = [[keys.index(d) for d in c[2]] for c in calls]
    users: list[list[int]] = [[] for _ in calls]
    for j, ds in enumerate(deps):
        for i in ds:
            users[i].append(j)
    return CallInstance(tree, keys, [c[3] for c in calls], deps, users, list(range(len(calls))))


# -- A: three calls on one worker, two of them sharing a prefix ----------------------------
# P = tokens 1..6 (ω = 6) is a shared system prompt.
#   a = P + [10 11]        prompt 8 tokens,  len_out 2
#   b = [20 21 22]          prompt 3 tokens,  len_out 3
#   c = P + [12 13 14 15]   prompt 10 tokens, len_out 1
# TRT: root ─┬─ P(6) ─┬─ [10 11](2) ── a
#            │        └─ [12..15](4) ── c
#            └─ [20 21 22](3) ── b
# α = 1, M = 8 (no dependencies, so M never enters).
P = [1, 2, 3, 4, 5, 6]
A = instance([(("a", 0), [*P, 10, 11], [], 2.0),
              (("b", 0), [20, 21, 22], [], 3.0),
              (("c", 0), [*P, 12, 13, 14, 15], [], 1.0)])
a, b, c = 0, 1, 2
COST_A = TokenStepCost((8,))


def test_a_prefill_eq1() -> None:
    # Eq. 1, j = 1: the whole path from the root. j > 1: the path below LCA(prev, cur).
    assert A.prefill(None, a) == 8  # ω(P) + ω([10 11]) = 6 + 2
    assert A.prefill(None, c) == 10  # 6 + 4
    assert A.prefill(a, c) == 4  # LCA(a, c) = P: only [12..15] is new
    assert A.prefill(c, a) == 2  # only [10 11]
    assert A.prefill(a, b) == 3  # LCA = root: b's whole prompt
    assert A.prefill(b, c) == 10  # b shares nothing with c: sharing is only with the
    #                              call just before on the same worker


def test_a_usage_eqs_2_3() -> None:
    # u_d = ½·len_out·(len_out + 1): a: ½·2·3 = 3; b: ½·3·4 = 6; c: ½·1·2 = 1
    # u = len_out·u_p + u_d (α = 1)
    assert COST_A.usage(8, 2) == 19  # a first: 2·8 + 3
    assert COST_A.usage(2, 2) == 7  # a after c: 2·2 + 3
    assert COST_A.usage(3, 3) == 15  # b (any position): 3·3 + 6
    assert COST_A.usage(10, 1) == 11  # c first or after b: 1·10 + 1
    assert COST_A.usage(4, 1) == 5  # c after a: 1·4 + 1


def test_a_makespan_eq5() -> None:
    # σ = (a, c, b):  a: b=0,  c=0+19=19;  c: u_p=4, u=5, b=19, c=24;  b: u=15, b=24, c=39
    ev = evaluate_orders(A, COST_A, [[a, c, b]])
    assert (ev.start, ev.end, ev.makespan) == ([0, 24, 19], [19, 39, 24], 39)
    # σ = (a, b, c): c after b prefills all 10 tokens: 19 + 15 + 11 = 45 (6 more steps:
    # the 6 shared tokens, held for c's 1 output step)
    assert evaluate_orders(A, COST_A, [[a, b, c]]).makespan == 45
    # every order (one worker, no delays: T = Σ u):
    #   (a c b) 19+5+15 = 39   (c a b) 11+7+15 = 33   (a b c) 19+15+11 = 45
    #   (c b a) 11+15+19 = 45  (b a c) 15+19+5 = 39   (b c a) 15+11+7 = 33
    assert evaluate_orders(A, COST_A, [[c, a, b]]).makespan == 33
    assert evaluate_orders(A, COST_A, [[b, c, a]]).makespan == 33
    res = solve_exact(A, COST_A, 1, time_limit_s=30)
    assert res.status == "optimal" and res.makespan == 33
    assert res.orders in ([[c, a, b]], [[b, c, a]])


# -- B: a dependency and its precedence delay, one worker --------------------------------
#   x = [1 2 3 4]                 prompt 4,              len_out 2
#   y = [30 31] + <x's output>    prompt 2 + 2 = 4 (the placeholder weighs len_out(x) = 2),
#                                 len_out 1, depends on x
#   z = [40..45]                  prompt 6,              len_out 1
# α = 1, M = 4: d(x) = α·M·len_out(x) = 1·4·2 = 8
B = instance([(("x", 0), [1, 2, 3, 4], [], 2.0),
              (("y", 0), [30, 31, (("x", 0), 2.0)], [("x", 0)], 1.0),
              (("z", 0), [40, 41, 42, 43, 44, 45], [], 1.0)])
x, y, z = 0, 1, 2
COST_B = TokenStepCost((4,))


def test_b_delay_eq4() -> None:
    assert COST_B.delay(2) == 8  # d(x) = 1·4·2
    assert B.prefill(x, y) == 4  # x and y share nothing (LCA = root): 2 tokens + slot 2


def test_b_makespan_eq5() -> None:
    # u(x) = 2·4 + ½·2·3 = 11;  u(y) = 1·4 + ½·1·2 = 5;  u(z) = 1·6 + 1 = 7
    # σ = (x, y, z): x: b=0, c=11.  y: b ≥ c(x) + d(x) = 11 + 8 = 19 (the worker idles 8),
    #                c = 24.  z: b = 24, c = 31.               T = 31
    ev = evaluate_orders(B, COST_B, [[x, y, z]])
    assert (ev.start, ev.end, ev.makespan) == ([0, 19, 24], [11, 24, 31], 31)
    # σ = (x, z, y): z fills the delay: z: b=11, c=18; y: b = max(18, 19) = 19, c=24. T = 24
    ev = evaluate_orders(B, COST_B, [[x, z, y]])
    assert (ev.start, ev.end, ev.makespan) == ([0, 19, 11], [11, 24, 18], 24)
    # σ = (z, x, y): z: 0→7; x: 7→18; y: b = max(18, 18 + 8) = 26, c = 31.  T = 31
    assert evaluate_orders(B, COST_B, [[z, x, y]]).makespan == 31
    # the other three orders put y before its input
    with pytest.raises(ValueError):
        evaluate_orders(B, COST_B, [[y, x, z]])
    res = solve_exact(B, COST_B, 1, time_limit_s=30)
    assert res.status == "optimal" and res.makespan == 24 and res.orders == [[x, z, y]]


# -- C: two workers, α = 1/M_i, a dependency across workers -------------------------------
#   p = [1 2 3 4]                  prompt 4,            len_out 4
#   q = [1 2 3 4] + <p's output>   prompt 4 + 4 = 8,    len_out 2, depends on p; shares
#                                  [1 2 3 4] with p
#   r = [7 8]                      prompt 2,            len_out 2
# M = (10, 20), α_i = 1/M_i: worker 0's usage is 0.1·(...), worker 1's 0.05·(...);
# d(p) = α_i·M_i·len_out(p) = 4 on either worker.
C = instance([(("p", 0), [1, 2, 3, 4], [], 4.0),
              (("q", 0), [1, 2, 3, 4, (("p", 0), 4.0)], [("p", 0)], 2.0),
              (("r", 0), [7, 8], [], 2.0)])
p, q, r = 0, 1, 2
COST_C = TokenStepCost((10, 20), alpha="inverse_capacity")


def test_c_usage_and_delay_per_worker() -> None:
    # u_d: p ½·4·5 = 10, q ½·2·3 = 3, r ½·2·3 = 3
    assert C.prefill(None, q) == 8 and C.prefill(p, q) == 4 and C.prefill(r, q) == 8
    assert COST_C.usage(4, 4, 0) == pytest.approx(2.6)  # p on w0: 0.1·(4·4 + 10)
    assert COST_C.usage(4, 4, 1) == pytest.approx(1.3)  # p on w1: 0.05·26
    assert COST_C.usage(4, 2, 1) == pytest.approx(0.55)  # q after p on w1: 0.05·(2·4 + 3)
    assert COST_C.delay(4, 0) == COST_C.delay(4, 1) == pytest.approx(4)  # 0.1·10·4, 0.05·20·4


def test_c_makespan_eq5() -> None:
    # σ = ((p, q), (r)):  w0: p 0 → 2.6;  q: b = max(2.6, 2.6 + 4) = 6.6,
    #   u = 0.1·(2·4 + 3) = 1.1 (shares [1 2 3 4]), c = 7.7.  w1: r: 0.05·(2·2 + 3) = 0.35.
    #   T = 7.7
    ev = evaluate_orders(C, COST_C, [[p, q], [r]])
    assert ev.start == pytest.approx([0, 6.6, 0])
    assert ev.end == pytest.approx([2.6, 7.7, 0.35])
    assert ev.makespan == pytest.approx(7.7)
    # σ = ((p), (r, q)): q on w1 after r prefills all 8 tokens: u = 0.05·(2·8 + 3) = 0.95;
    #   b = max(0.35, c(p) + d(p) = 2.6 + 4 = 6.6) = 6.6, c = 7.55 — the delay of a
    #   producer on w0 holds a consumer on w1.                          T = 7.55
    ev = evaluate_orders(C, COST_C, [[p], [r, q]])
    assert ev.start == pytest.approx([0, 6.6, 0])
    assert ev.end == pytest.approx([2.6, 7.55, 0.35])
    assert ev.makespan == pytest.approx(7.55)
    # σ* = ((r), (p, q)): w1 (cheaper per token, α = 1/20) runs the chain: p 0 → 1.3;
    #   q: b = 1.3 + 4 = 5.3, u = 0.55, c = 5.85; w0: r 0 → 0.1·7 = 0.7.  T = 5.85
    # Optimal: q cannot start before c(p) + 4 ≥ 1.3 + 4 (p's least usage is 1.3, on w1 as
    # its first call) and q's least usage is 0.55 (on w1 right after p): T ≥ 5.85.
    ev = evaluate_orders(C, COST_C, [[r], [p, q]])
    assert ev.start == pytest.approx([0, 5.3, 0])
    assert ev.end == pytest.approx([1.3, 5.85, 0.7])
    assert ev.makespan == pytest.approx(5.85)
    res = solve_exact(C, COST_C, 2, time_limit_s=30)
    assert res.status == "optimal"
    assert res.makespan == pytest.approx(5.85)
    assert res.orders == [[r], [p, q]]
