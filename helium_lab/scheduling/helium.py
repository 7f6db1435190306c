"""Helium's cache-aware scheduling (Alg. 1, PAPER.md §4.3) on the operator-level TRT.

1. PartitionWorkflow places op copies on workers (cost-based, see `partition.py`).
2. The operator-level TRT of those copies is mirrored by a scheduling tree.
3. A DFS walks it: at each inner node the children are tried in critical-path order
   (largest remaining weighted dependency depth first, then earliest schedulable token
   step); a leaf is scheduled when its inputs are scheduled and their precedence delays
   have elapsed on its worker's clock. When a pass schedules nothing, a forced pass takes
   the path to the leaf that can start earliest, so progress is guaranteed.
4. Scheduled leaves go through a release buffer: an inner sequence (leaves sharing their
   first placeholder node) is emitted once all its leaves are scheduled.

Op-level estimates: a copy with n calls costs n·u (Eq. 3, prefill net of its static prefix,
which consecutive calls of one op share); a dependent may start one call's usage plus the
delay d (Eq. 4) after its input's copy starts, since calls stream through.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Hashable
from dataclasses import replace

from helium_lab.scheduling.baselines import lspf
from helium_lab.scheduling.context import PlanningContext
from helium_lab.scheduling.evaluation import token_steps
from helium_lab.scheduling.partition import partition_workflow
from helium_lab.scheduling.refine import EvaluationBudget, refine
from helium_lab.scheduling.schedule import Partition, Schedule
from helium_lab.scheduling.tokensteps import CallInstance
from helium_lab.tokenizer import Tokenizer, token_count
from helium_lab.trt.build import SlotLengths, operator_trt
from helium_lab.trt.tree import Node, TemplatedRadixTree

Key = Hashable  # (op id, worker)


class _SNode:
    """Scheduling-tree node mirroring a TRT node (or a leaf). `leaves` (all leaves below)
    get sorted by critical-path depth; `top` skips the scheduled ones at the front."""

    __slots__ = ("children", "leaf", "leaves", "top")

    def __init__(self, leaf: Key | None = None) -> None:
        self.leaf = leaf
        self.children: list[_SNode] = []
        self.leaves: list[Key] = [leaf] if leaf is not None else []
        self.top = 0


def _mirror(node: Node) -> _SNode:
    s = _SNode()
    s.children = [_SNode(k) for k in node.leaves] + [_mirror(c) for c in node.children.values()]
    for c in s.children:
        s.leaves.extend(c.leaves)
    return s


def _sort_by_depth(node: _SNode, depth: dict[Key, float]) -> None:
    node.leaves.sort(key=lambda k: -depth[k])
    for c in node.children:
        _sort_by_depth(c, depth)


class _Scheduler:
    def __init__(self, ctx: PlanningContext, tree: TemplatedRadixTree, partition: Partition,
                 lengths: SlotLengths) -> None:
        cost = ctx.cost
        self.tree = tree
        self.clock = [0.0] * ctx.num_workers
        self.n: dict[Key, int] = {}
        self.unit: dict[Key, float] = {}  # one call's usage
        self.delay: dict[Key, float] = {}
        self.users: dict[Key, list[Key]] = {k: [] for k in tree.leaves}
        for key, leaf in tree.leaves.items():
            op, w = leaf.key[0], leaf.worker  # type: ignore[index]
            out = lengths(op)
            self.n[key] = partition.calls_on(op, w)
            shared = tree.static_prefix(key)
            self.unit[key] = cost.usage(tree.prompt_weight(key) - shared, out, w)
            self.delay[key] = cost.delay(out, w)
            for d in leaf.deps:
                self.users[d].append(key)
        self.depth: dict[Key, float] = {}
        for key in reversed(list(tree.leaves)):  # leaves were added in topological order
            tail = max((self.depth[u] for u in self.users[key]), default=0.0)
            self.depth[key] = self.n[key] * self.unit[key] + self.delay[key] + tail
        self.start: dict[Key, float] = {}
        self._ready: dict[Key, float] = {}
        self.group_of: dict[Key, int] = {}
        self.groups = tree.inner_groups()
        for g, members in enumerate(self.groups):
            for k in members:
                self.group_of[k] = g
        self.pending = [len(m) for m in self.groups]
        self.buffer: dict[int, list[str]] = {}
        self.final: list[list[list[str]]] = [[] for _ in self.clock]

    def nbytes(self) -> int:
        """Memory of the scheduler's own state (maps over leaves, groups, buffers)."""
        maps = (self.n, self.unit, self.delay, self.users, self.depth, self.start,
                self.group_of, self.buffer)
        size = sum(sys.getsizeof(m) for m in maps) + sys.getsizeof(self.groups)
        size += sum(sys.getsizeof(v) for v in self.users.values())
        size += sum(sys.getsizeof(g) for g in self.groups) + sys.getsizeof(self.final)
        return size + sum(sys.getsizeof(w) + sum(sys.getsizeof(st) for st in w)
                          for w in self.final)

    # -- state queries -----------------------------------------------------------------
    def ready_at(self, key: Key) -> float:
        """Earliest token step the leaf may start (inf while an input is unscheduled).
        Cached; scheduling a leaf invalidates its users' entries."""
        t = self._ready.get(key)
        if t is not None:
            return t
        t = 0.0
        for d in self.tree.leaves[key].deps:
            s = self.start.get(d)
            if s is None:
                t = math.inf
                break
            t = max(t, s + self.unit[d] + self.delay[d])
        self._ready[key] = t
        return t

    def max_depth(self, node: _SNode) -> float:
        """Largest critical-path depth among the node's unscheduled leaves."""
        while node.top < len(node.leaves) and node.leaves[node.top] in self.start:
            node.top += 1
        return self.depth[node.leaves[node.top]] if node.top < len(node.leaves) else 0.0

    def worker(self, key: Key) -> int:
        return self.tree.leaves[key].worker

    def can_schedule(self, key: Key, force: bool) -> bool:
        t = self.ready_at(key)
        return t < math.inf and (force or t <= self.clock[self.worker(key)])

    def schedule_leaf(self, key: Key) -> None:
        w = self.worker(key)
        s = max(self.clock[w], self.ready_at(key))
        self.start[key] = s
        for u in self.users[key]:
            self._ready.pop(u, None)
        self.clock[w] = s + self.n[key] * self.unit[key]
        g = self.group_of[key]
        self.buffer.setdefault(g, []).append(key[0])  # type: ignore[index]
        self.pending[g] -= 1
        if self.pending[g] == 0:  # release the whole inner sequence at once
            self.final[w].append(self.buffer.pop(g))

    def select_children(self, node: _SNode, force: bool) -> list[_SNode]:
        """Critical path first; when forcing, the earliest schedulable step first."""
        scored = []
        for i, c in enumerate(node.children):
            depth = self.max_depth(c)
            early = min((self.ready_at(k) for k in c.leaves[c.top:] if k not in self.start),
                        default=math.inf)
            scored.append(((early, -depth, i) if force else (-depth, early, i), c))
        scored.sort(key=lambda x: x[0])
        return [c for _, c in scored]

    # -- Alg. 1 ------------------------------------------------------------------------
    def recurse(self, node: _SNode, force: bool) -> bool:
        if node.leaf is not None:
            if self.can_schedule(node.leaf, force):
                self.schedule_leaf(node.leaf)
                return True
            return False
        for child in self.select_children(node, force):
            if self.recurse(child, force):
                node.children.remove(child)
            force = False
        return not node.children


REFINE_MAX_CALLS = 64


def helium_schedule(ctx: PlanningContext, tokenizer: Tokenizer | None = None) -> Schedule:
    """Alg. 1, then (for batches of at most REFINE_MAX_CALLS calls) call-level refinement."""
    sched = alg1_schedule(ctx, tokenizer)
    if 0 < ctx.plan.num_calls() <= REFINE_MAX_CALLS:
        return refined(ctx, sched, tokenizer or ctx.tokenizer)
    return sched


def refined(ctx: PlanningContext, sched: Schedule, tok: Tokenizer) -> Schedule:
    """Relocation search from Alg. 1's and LSPF's call orders; kept only if no worse.

    Bounded by a number of T(σ) evaluations, never by time: the schedule does not depend on
    the machine's speed (`refine_ms` is a measurement only)."""
    t0 = time.perf_counter()
    inst = CallInstance.from_plan(ctx.plan, tok)
    base = token_steps(sched, inst, ctx.cost)
    starts = [base.orders]
    assign = [sched.partition.worker_of(op, q) for op, q in inst.keys]
    other = token_steps(replace(lspf(ctx), partition=sched.partition), inst, ctx.cost)
    if all(assign[j] == w for w, o in enumerate(other.orders) for j in o):
        starts.append(other.orders)
    budget = EvaluationBudget(ctx.refine_max_evaluations)
    best, orders = refine(inst, ctx.cost, starts, budget)
    stats = {**sched.stats, "alg1_token_steps": base.makespan, "refined_token_steps": best,
             "refine_evaluations": budget.used, "refine_max_evaluations": budget.limit,
             "refine_ms": (time.perf_counter() - t0) * 1e3}
    if best >= base.makespan:
        return replace(sched, stats=stats)
    rank = {inst.keys[j]: i for o in orders for i, j in enumerate(o)}
    return replace(sched, dispatch="strict", call_order=rank, stats=stats)


def alg1_schedule(ctx: PlanningContext, tokenizer: Tokenizer | None = None) -> Schedule:
    """Alg. 1 alone: the operator-level soft schedule."""
    tok = tokenizer or ctx.tokenizer
    plan = ctx.plan
    t0 = time.perf_counter()
    partition = partition_workflow(ctx)
    lengths = SlotLengths(plan, lambda s: token_count(tok, s))
    workers_of = {op.id: [w for w in partition.workers_of(op.id) if partition.calls_on(op.id, w)]
                  for op in plan.llm_ops}
    tree = operator_trt(plan, tok, workers_of, lengths, partition.op_worker)
    t1 = time.perf_counter()
    sched = _Scheduler(ctx, tree, partition, lengths)
    root = _SNode()
    root.children = [_mirror(r) for r in tree.roots.values()]
    for c in root.children:
        root.leaves.extend(c.leaves)
    _sort_by_depth(root, sched.depth)
    passes = 0
    while not sched.recurse(root, False):
        sched.recurse(root, True)
        passes += 1
    stages = tuple(tuple(tuple(st) for st in sched.final[w]) for w in range(ctx.num_workers))
    t2 = time.perf_counter()
    return Schedule("helium", partition, stages, "best_effort",
                    stats={"forced_passes": passes, "trt_ms": (t1 - t0) * 1e3,
                           "cas_ms": (t2 - t1) * 1e3, "trt_bytes": tree.nbytes(),
                           "scheduler_bytes": sched.nbytes(),
                           "trt_nodes": sum(1 for _ in tree.nodes())})
