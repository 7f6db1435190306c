"""PartitionWorkflow (Alg. 1, line 2): place op copies on workers.

`planner.partition: even` (the default) is the reference's split: every op gets one copy
per worker over a contiguous, equal slice of the batch. It reads nothing per query, so
planning time does not grow with the batch.

`planner.partition: lpt` (our extension) costs two candidates and keeps the cheaper:

* query split: every op gets one copy per worker over a slice of the batch. Queries are
  assigned longest-first to the least-loaded worker (LPT) by an estimate of their token
  usage, so long queries do not pile up on one worker;
* group placement: whole inner groups (ops sharing a per-query prefix) go to workers, LPT by
  their load; this only wins when the batch is too small to split well.

Estimates use text length as a proxy for token count, but reading every query's input
lengths is O(batch): at 1,024 Trading queries on 2 workers it made Alg. 1's TRT+CAS time
1.55x that at 16, against 1.03x with even slices (docs/decisions.md). Batches of fewer than
2 queries per worker are placed as `lpt` places them in both modes.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence

import numpy as np

from helium_lab.dsl.ops import InputOp, LLMOp
from helium_lab.prompt import Slot, Static, segments
from helium_lab.scheduling.context import PlanningContext
from helium_lab.scheduling.schedule import Partition

CHARS_PER_TOKEN = 6.0


def _lpt(weights: Sequence[float], speeds: Sequence[float]) -> tuple[list[int], float]:
    """Longest processing time first onto the least-loaded worker; returns (owner, max load).

    With identical workers, the snake order (0 1 .. W-1 W-1 .. 1 0 ...) over the weights in
    decreasing order: LPT's usual outcome, computed without a Python loop per query.
    """
    w_arr = np.asarray(weights, dtype=float)
    order_arr = np.argsort(-w_arr, kind="stable")
    workers = len(speeds)
    if len(set(speeds)) == 1:
        lap = np.concatenate([np.arange(workers), np.arange(workers)[::-1]])
        snake = np.resize(lap, len(weights))
        owner_arr = np.empty(len(weights), dtype=int)
        owner_arr[order_arr] = snake
        loads = np.bincount(owner_arr, weights=w_arr, minlength=workers) / speeds[0]
        return owner_arr.tolist(), float(loads.max())
    heap = [(0.0, w) for w in range(workers)]
    owner = [0] * len(weights)
    for i in order_arr.tolist():
        load, w = heapq.heappop(heap)
        owner[i] = w
        heapq.heappush(heap, (load + weights[i] / speeds[w], w))
    return owner, max(load for load, _ in heap)


def _op_static_and_inputs(ctx: PlanningContext) -> tuple[dict[str, float], dict[str, list[str]]]:
    """Per LLM op: static characters plus estimated upstream-answer characters, and the
    names of the per-query inputs its prompt splices in."""
    graph = ctx.plan.graph
    fixed: dict[str, float] = {}
    inputs: dict[str, list[str]] = {}
    for op in graph.llm_ops:
        chars, names = 0.0, []
        for seg in segments(graph, op):
            if isinstance(seg, Static):
                chars += len(seg.text)
                continue
            src = graph.ops[seg.op]
            if isinstance(src, InputOp):
                names.append(src.name)
            elif isinstance(src, LLMOp):
                chars += src.profile.mean * CHARS_PER_TOKEN
            else:
                chars += 32 * CHARS_PER_TOKEN
        fixed[op.id], inputs[op.id] = chars, names
    return fixed, inputs


def partition_workflow(ctx: PlanningContext) -> Partition:
    plan, workers = ctx.plan, ctx.num_workers
    size = plan.size
    if workers == 1:
        return Partition(1, (0,) * size)
    if ctx.partition == "even" and size >= 2 * workers:
        return Partition.even(workers, size)  # the reference's split: no per-query reads
    speeds = [1.0 / ctx.cost.a(w) / ctx.cost.capacities[w] for w in range(workers)]
    fixed, inputs = _op_static_and_inputs(ctx)
    outs = {op.id: min(op.profile.mean, op.sampling.max_tokens) for op in plan.llm_ops}
    # per-query weight: Σ_ops len_out · prompt chars (Eq. 3's dominant term)
    base = sum(outs[o] * fixed[o] for o in fixed)
    per_input: dict[str, float] = {}
    for o, names in inputs.items():
        for n in names:
            per_input[n] = per_input.get(n, 0.0) + outs[o]
    batch = plan.bound.batch  # lengths of the inputs some prompt splices in, only
    lens = {n: np.fromiter(map(len, batch[n]), dtype=float, count=len(batch[n]))
            for n in per_input}
    qw = np.full(size, base)
    for n, k in per_input.items():
        qw += k * lens[n]
    qweight: list[float] = qw.tolist()
    owner, split_cost = _lpt(qweight, speeds)
    split = Partition(workers, tuple(owner))
    if size >= 2 * workers:
        return split
    # group placement: ops sharing their static prefix and first placeholder stay together
    groups: dict[tuple[str, str], list[str]] = {}
    for op in plan.llm_ops:
        segs = segments(plan.graph, op)
        lead = segs[0].text if segs and isinstance(segs[0], Static) else ""
        first = next((s.op for s in segs if isinstance(s, Slot)), op.id)
        groups.setdefault((lead, first), []).append(op.id)
    gl = list(groups.values())
    mean_in = {n: float(v.mean()) for n, v in lens.items()}
    opw = {o: size * outs[o] * (fixed[o] + sum(mean_in[n] for n in inputs[o])) for o in fixed}
    gweight = [sum(opw[o] for o in g) for g in gl]
    gowner, group_cost = _lpt(gweight, speeds)
    if group_cost < split_cost:
        return Partition(workers, tuple(owner),
                         {o: gowner[i] for i, g in enumerate(gl) for o in g})
    return split
