"""Alg. 1's mechanics (PAPER.md §4.3) on hand-built operator-level TRTs, one worker.

Every leaf below is a static-only template, so each op is its own inner sequence and the
final schedule lists ops in the order Alg. 1 emits them. α = 1 and M = 8192: a precedence
delay (8192 · len_out) dwarfs the usage of these short prompts, so a dependent is blocked
until a forced pass unless said otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace

from helium_lab.cost import TokenStepCost
from helium_lab.scheduling.helium import _Scheduler
from helium_lab.scheduling.schedule import Partition
from helium_lab.trt.tree import TemplatedRadixTree

Op = tuple[str, Sequence[int], Sequence[str], float]  # name, template atoms, inputs, len_out


def schedule(ops: Sequence[Op], queries: int = 2, capacity: int = 8192
             ) -> tuple[list[str], int]:
    """Run Alg. 1 over the ops (given in topological order); the emitted op order and the
    number of forced passes."""
    tree = TemplatedRadixTree()
    out = {}
    for name, atoms, deps, len_out in ops:
        tree.add((name, 0), atoms, 0, [(d, 0) for d in deps])
        out[name] = len_out
    ctx = SimpleNamespace(cost=TokenStepCost.uniform(1, capacity), num_workers=1)
    sched = _Scheduler(ctx, tree, Partition(1, (0,) * queries), out.__getitem__)  # type: ignore[arg-type]
    forced = sched.run()
    return [op for stage in sched.final[0] for op in stage], forced


def test_dependency_depth_counts_only_leaves_that_can_start_now() -> None:
    # z feeds x_blocked, the head of a chain of three; subtree [10] holds x_blocked and the
    # independent sink x2; y (depth 1) sits alone. After z, x_blocked waits out z's delay,
    # so subtree [10]'s best leaf that can start now is x2 (depth 0): y goes first.
    ops: list[Op] = [
        ("z", [1, 2], [], 10),
        ("y", [3, 4], [], 10),
        ("x_blocked", [10, 11], ["z"], 10),
        ("x2", [10, 12], [], 10),
        ("t", [5], ["y"], 10),
        ("s1", [6], ["x_blocked"], 10),
        ("s2", [7], ["s1"], 10),
    ]
    order, forced = schedule(ops)
    assert order[:3] == ["z", "y", "x2"]
    assert forced >= 1  # the chain below z can only go on by forcing


def test_children_are_reselected_after_every_update() -> None:
    # a (depth 2) first; its delay is small here (M = 1), so its dependent c (depth 1)
    # becomes able to start before b (depth 0): the next child is re-chosen, and it is c.
    ops: list[Op] = [
        ("a", [1] * 50, [], 10),
        ("b", [2] * 50, [], 10),
        ("c", [3] * 50, ["a"], 10),
        ("d", [4] * 50, ["c"], 10),
    ]
    order, forced = schedule(ops, capacity=1)
    assert order == ["a", "c", "b", "d"]
    assert forced == 0


def test_forced_pass_starts_the_op_that_can_start_earliest() -> None:
    # after a and b, both dependents are blocked; b's shorter output gives the shorter
    # delay, so d (shallower than c) is forced first.
    ops: list[Op] = [
        ("a", [1], [], 20),
        ("b", [2], [], 5),
        ("c", [3], ["a"], 10),
        ("d", [4], ["b"], 10),
        ("e", [5], ["c"], 10),
    ]
    order, forced = schedule(ops)
    assert order == ["a", "b", "d", "c", "e"]
    assert forced == 3


def test_ties_go_to_the_sibling_the_others_depend_on() -> None:
    # subtrees [10] and [20] tie on depth (1) and earliest step (0); x2 in [10] reads y1 in
    # [20], so [20] goes first although [10] comes first in TRT order.
    ops: list[Op] = [
        ("x1", [10, 11], [], 10),
        ("y1", [20, 21], [], 10),
        ("x2", [10, 12], ["y1"], 10),
        ("s", [30], ["x1"], 10),
    ]
    order, _ = schedule(ops)
    assert order[:2] == ["y1", "x1"]


def test_inner_sequence_released_when_all_its_ops_are_emitted() -> None:
    # p and q share a placeholder node (one inner sequence); q reads r, emitted between
    # them: the sequence [p q] is released after r, as one stage.
    tree = TemplatedRadixTree()
    slot = tree.slot("question", 5)
    tree.add(("r", 0), [7, 8], 0)
    tree.add(("p", 0), [1, slot, 2], 0)
    tree.add(("q", 0), [1, slot, 3], 0, [("r", 0)])
    out = {"p": 10.0, "q": 10.0, "r": 10.0}
    ctx = SimpleNamespace(cost=TokenStepCost.uniform(1), num_workers=1)
    sched = _Scheduler(ctx, tree, Partition(1, (0, 0)), out.__getitem__)  # type: ignore[arg-type]
    sched.run()
    assert sched.final[0] == [["r"], ["p", "q"]]


def test_same_input_same_schedule() -> None:
    ops: list[Op] = [(f"o{i}", [i % 3, i], [f"o{i - 2}"] if i >= 2 else [], 10 + i)
                     for i in range(12)]
    assert schedule(ops) == schedule(ops)
