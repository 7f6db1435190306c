"""The best any operator-level soft schedule can do on a one-worker Table 5 instance.

A soft schedule (`helium_lab.scheduling.schedule`) is a sequence of inner sequences
(stages) of LLM ops; within a stage calls go query by query, and the worker dispatches the
ready call of lowest rank (stage, query, position in the stage) whenever it frees, as
`evaluate_schedule` costs it. Alg. 1 picks one such schedule. This module tries them all:
every ordering of the ops cut into consecutive stages (n! * 2^(n-1) candidates for n ops;
candidates that induce the same call order are costed once) and returns the least T(σ)
(Eq. 5). It bounds every op-level scheduler that runs its plan this way, Alg. 1 included:
what is left between it and the MILP's optimum needs call-level orders.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from helium_lab.cost import TokenStepCost
from helium_lab.errors import ConfigError
from helium_lab.scheduling.tokensteps import CallInstance, list_schedule

MAX_OPS = 8  # 8! * 2^7 = 5.2M candidates; beyond that the search is not worth running


@dataclass(frozen=True)
class SoftBound:
    """The best soft schedule found: its T(σ), its stages, and the search's size."""

    token_steps: float
    stages: tuple[tuple[str, ...], ...]
    candidates: int
    distinct_orders: int


def ordered_stagings(ops: Sequence[str]) -> Iterator[tuple[tuple[str, ...], ...]]:
    """Every ordering of `ops` cut into consecutive non-empty stages."""
    n = len(ops)
    for perm in itertools.permutations(ops):
        for cuts in range(1 << max(n - 1, 0)):
            stages, start = [], 0
            for i in range(1, n):
                if cuts >> (i - 1) & 1:
                    stages.append(perm[start:i])
                    start = i
            stages.append(perm[start:])
            yield tuple(stages)


def best_soft_schedule(inst: CallInstance, cost: TokenStepCost) -> SoftBound:
    """The least T(σ) over every one-worker soft schedule of `inst`'s ops (see the module
    docstring), dispatched best effort by rank."""
    ops = sorted({op for op, _ in inst.keys}, key=lambda o: inst.op_pos[
        next(j for j, k in enumerate(inst.keys) if k[0] == o)])
    if len(ops) > MAX_OPS:
        raise ConfigError(f"table5.soft_bound: {len(ops)} LLM ops is more than the "
                          f"exhaustive search takes ({MAX_OPS})")
    seen: dict[tuple[int, ...], float] = {}
    best: tuple[float, tuple[tuple[str, ...], ...]] | None = None
    candidates = 0
    calls = range(len(inst))
    for stages in ordered_stagings(ops):
        candidates += 1
        where = {op: (s, i) for s, stage in enumerate(stages) for i, op in enumerate(stage)}
        rank = [(where[op][0], q, where[op][1]) for op, q in inst.keys]
        order = tuple(sorted(calls, key=rank.__getitem__))
        steps = seen.get(order)
        if steps is None:
            steps = seen[order] = _token_steps(inst, cost, order)
        if best is None or steps < best[0]:
            best = (steps, stages)
    assert best is not None
    return SoftBound(best[0], best[1], candidates, len(seen))


def _token_steps(inst: CallInstance, cost: TokenStepCost, order: tuple[int, ...]) -> float:
    """T(σ) of one worker dispatching the ready call earliest in `order` when it frees."""
    position = {j: p for p, j in enumerate(order)}
    return list_schedule(inst, cost, 1, lambda ready, prev, w: min(
        ready, key=position.__getitem__)).makespan
