"""Baseline scheduling policies of PAPER.md §7.1, as soft schedules.

* querywise: queries one after another, each query's ops in topological order (strict);
* opwise: each op over the whole batch before the next (Spark/Dask-style, strict);
* opwise_pipeline: the same op-major order, best effort: the order in which the OpWise
  client's pipeline stages take calls that are ready at once (its `op_pipeline` dispatch
  discipline, `processor/discipline.py`, gates each query's chain of ops);
* random: whatever is ready, in a seeded random order;
* in_order: whatever is ready, lowest query first, then the ops in topological order: the
  order in which asyncio starts the tasks of `asyncio.gather` over the queries (its tasks
  are scheduled first in, first out: LangGraph's `abatch`);
* lspf: whatever is ready, longest shared prefix first (SGLang's policy, a sorted queue).

All use the reference code's even contiguous split across workers; multi-worker baselines
are normally routed by a load balancer instead (see `routing.py`).
"""

from __future__ import annotations

from helium_lab.scheduling.context import PlanningContext
from helium_lab.scheduling.schedule import Dispatch, Partition, Schedule


def _ops(ctx: PlanningContext) -> list[str]:
    return [op.id for op in ctx.plan.llm_ops]


def _uniform(ctx: PlanningContext, name: str, stages: tuple[tuple[str, ...], ...],
             dispatch: Dispatch) -> Schedule:
    part = Partition.even(ctx.num_workers, ctx.plan.size)
    return Schedule(name, part, (stages,) * ctx.num_workers, dispatch, ctx.seed)


def querywise(ctx: PlanningContext) -> Schedule:
    return _uniform(ctx, "querywise", (tuple(_ops(ctx)),), "strict")


def opwise(ctx: PlanningContext) -> Schedule:
    return _uniform(ctx, "opwise", tuple((o,) for o in _ops(ctx)), "strict")


def opwise_pipeline(ctx: PlanningContext) -> Schedule:
    return _uniform(ctx, "opwise_pipeline", tuple((o,) for o in _ops(ctx)), "best_effort")


def random_order(ctx: PlanningContext) -> Schedule:
    return _uniform(ctx, "random", (tuple(_ops(ctx)),), "random")


def in_order(ctx: PlanningContext) -> Schedule:
    return _uniform(ctx, "in_order", (tuple(_ops(ctx)),), "best_effort")


def lspf(ctx: PlanningContext) -> Schedule:
    return _uniform(ctx, "lspf", (tuple(_ops(ctx)),), "lspf")
