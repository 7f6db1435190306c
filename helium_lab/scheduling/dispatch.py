"""Dispatch rules: how strictly a schedule's order is followed, as named strategies.

A `Schedule` names its rule (`Schedule.dispatch`); both places that act on it ask the rule
here instead of switching on the name: the planner's evaluation of T(σ) (Eq. 5) asks for the
call-level orders the rule induces (`token_steps`), and the query processor asks for the
order in which it submits ready calls (`priority`) and whether a worker's calls must leave
in exactly that order (`holds_order`).

    best_effort  any ready call, lowest schedule rank first (non-delay list scheduling)
    strict       exact rank order per worker, head-of-line blocking (Helium's refined plans)
    random       a seeded random order (LangGraph's ready dispatch)
    lspf         longest shared prefix first; the engine's queue decides (FCFS here)
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from helium_lab.cost import TokenStepCost
from helium_lab.scheduling.tokensteps import (
    CallInstance,
    Evaluation,
    evaluate_orders,
    list_schedule,
)

if TYPE_CHECKING:
    from helium_lab.scheduling.schedule import Schedule

Rank = tuple[int, int, int]  # Schedule.rank
Priority = tuple[int, int, int] | bytes | int  # comparable within one rule
Pick = Callable[[Sequence[int], "int | None", int], int]  # (ready, worker's last, worker)


@dataclass(frozen=True)
class DispatchRule:
    """One rule. `priority(schedule, op, q)`: the processor's submission key (lower first);
    `evaluate(schedule, inst, cost, assign, rank)`: T(σ) of the orders the rule induces on
    the planner's call instance (`assign[j]` the worker, `rank[j]` the schedule rank of
    call j)."""

    name: str
    holds_order: bool
    priority: Callable[[Schedule, str, int], Priority]
    evaluate: Callable[[Schedule, CallInstance, TokenStepCost, list[int], list[Rank]],
                       Evaluation]


def _by_rank(schedule: Schedule, op: str, q: int) -> Priority:
    return schedule.rank(op, q)


def _seeded(schedule: Schedule, op: str, q: int) -> Priority:
    return hashlib.blake2b(f"{schedule.seed}:{op}:{q}".encode(), digest_size=8).digest()


def _engine_decides(schedule: Schedule, op: str, q: int) -> Priority:
    return 0  # FCFS here; the engine's queue order does longest-prefix-first


def _strict_orders(schedule: Schedule, inst: CallInstance, cost: TokenStepCost,
                   assign: list[int], rank: list[Rank]) -> Evaluation:
    orders: list[list[int]] = [[] for _ in range(schedule.num_workers)]
    for j in sorted(range(len(inst)), key=rank.__getitem__):
        orders[assign[j]].append(j)
    return evaluate_orders(inst, cost, orders)


def _list_by(key: Callable[[int], Rank] | Callable[[int], int]) -> Pick:
    return lambda ready, prev, w: min(ready, key=key)


def _rank_list(schedule: Schedule, inst: CallInstance, cost: TokenStepCost,
               assign: list[int], rank: list[Rank]) -> Evaluation:
    return list_schedule(inst, cost, schedule.num_workers, _list_by(rank.__getitem__), assign)


def _random_list(schedule: Schedule, inst: CallInstance, cost: TokenStepCost,
                 assign: list[int], rank: list[Rank]) -> Evaluation:
    prio = list(range(len(inst)))
    random.Random(schedule.seed).shuffle(prio)
    return list_schedule(inst, cost, schedule.num_workers, _list_by(prio.__getitem__), assign)


def _longest_prefix_list(schedule: Schedule, inst: CallInstance, cost: TokenStepCost,
                         assign: list[int], rank: list[Rank]) -> Evaluation:
    def longest_prefix(ready: Sequence[int], prev: int | None, w: int) -> int:
        if prev is None:
            return ready[0]
        return min(ready, key=lambda j: (inst.prefill(prev, j)
                                         - inst.tree.prompt_weight(inst.keys[j]), j))

    return list_schedule(inst, cost, schedule.num_workers, longest_prefix, assign)


DISPATCH_RULES: dict[str, DispatchRule] = {r.name: r for r in (
    DispatchRule("best_effort", False, _by_rank, _rank_list),
    DispatchRule("strict", True, _by_rank, _strict_orders),
    DispatchRule("random", False, _seeded, _random_list),
    DispatchRule("lspf", False, _engine_decides, _longest_prefix_list),
)}


def dispatch_rule(name: str) -> DispatchRule:
    rule = DISPATCH_RULES.get(name)
    if rule is None:
        raise ValueError(f"unknown dispatch rule {name!r}; known: {sorted(DISPATCH_RULES)}")
    return rule
