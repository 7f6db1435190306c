"""Helium's cache-aware scheduling (Alg. 1, PAPER.md §4.3) on the operator-level TRT.

    Schedule:  PartitionWorkflow; BuildSchedulingTree;
               while not Recurse(root, false): Recurse(root, true)   (force progress)
    Recurse(node, force):
        leaf:  if CanSchedule(node, force): ScheduleNode(node)
        inner: for each child in SelectChildren(node, force):
                   if Recurse(child, force): RemoveChild(child)
                   UpdateState(children); force <- false             (only the first child)
        return node.IsEmpty()

* PartitionWorkflow (line 2) places op copies on workers (cost-based, `partition.py`).
* BuildSchedulingTree (line 3): the operator-level TRT of those copies (Alg. 2), mirrored
  by a scheduling tree (`_SNode`) that tracks each subtree's state: the greatest dependency
  depth of a leaf that can start now (non-blocking) and of one whose inputs are all
  scheduled (schedulable), and the earliest token step at which one can start.
* SelectChildren (line 12) is a critical-path DFS [Kelley & Walker]: it yields one child
  at a time, re-chosen after every UpdateState among the children still able to progress
  (App. B's SelectBestChild over the k remaining children): unforced, among subtrees with
  a non-blocking leaf, the greatest dependency depth, then the earliest schedulable token
  step; forced, among subtrees with a schedulable leaf, the earliest token step, then the
  greatest depth. Ties go to the sibling that the fewest tied siblings depend on (depth in
  the sibling dependency graph, cycles collapsed into SCCs), then to TRT order. A child
  that cannot progress is not visited.
* Dependency depth: the longest chain of dependents below an op in G = (L, E').
* CanSchedule (line 9): the op's inputs are scheduled and their precedence delays have
  elapsed on its worker's token-step clock; forced, the op starts when they elapse (the
  forced leaf is the one that can start earliest).
* ScheduleNode (line 10) goes through the release buffer: an inner sequence (the leaves
  under the first TRT node holding a placeholder, i.e. sharing one static prompt) is
  released to the final schedule once all its operators have been emitted.

Op-level estimates: a copy with n calls costs n·u (Eq. 3, prefill net of its static prefix,
which consecutive calls of one op share); a dependent may start one call's usage plus the
delay d (Eq. 4) after its input's copy starts, since calls stream through. Nothing reads a
clock on the schedule's path (only the `*_ms` stats are measured).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Hashable
from dataclasses import replace

from helium_lab.scheduling.baselines import lspf
from helium_lab.scheduling.context import PlanningContext
from helium_lab.scheduling.evaluation import evaluate_schedule
from helium_lab.scheduling.partition import partition_workflow
from helium_lab.scheduling.refine import EvaluationBudget, refine
from helium_lab.scheduling.schedule import Partition, Schedule
from helium_lab.scheduling.tokensteps import CallInstance
from helium_lab.tokenizer import Tokenizer, token_count
from helium_lab.trt.build import SlotLengths, operator_trt
from helium_lab.trt.tree import Node, TemplatedRadixTree

Key = Hashable  # (op id, worker)
INF = math.inf
# A subtree's scheduling state: (non-blocking depth, earliest schedulable token step,
# schedulable depth, token step at which a blocked leaf unblocks). -1: no such leaf.
State = tuple[float, float, float, float]
EMPTY: State = (-1.0, INF, -1.0, INF)


class _SNode:
    """Scheduling-tree node mirroring a TRT node, or a leaf (one op copy).

    `state` caches the subtree's `State`; it stays valid while the node is not `dirty` (no
    leaf below was scheduled or became schedulable since) and its worker's clock has not
    reached the step at which a blocked leaf below unblocks."""

    __slots__ = ("children", "dirty", "leaf", "leaves", "level", "parent", "state", "worker")

    def __init__(self, parent: _SNode | None, worker: int, leaf: Key | None = None) -> None:
        self.parent = parent
        self.level: int = 0 if parent is None else parent.level + 1
        self.worker = worker
        self.leaf = leaf
        self.children: list[_SNode] = []
        self.leaves: list[Key] = [leaf] if leaf is not None else []
        self.dirty = True
        self.state: State = EMPTY


def _mirror(node: Node, parent: _SNode, worker: int, snode_of: dict[Key, _SNode]) -> _SNode:
    """BuildSchedulingTree: the scheduling node of TRT node `node` and its subtree."""
    s = _SNode(parent, worker)
    for k in node.leaves:
        snode_of[k] = leaf = _SNode(s, worker, k)
        s.children.append(leaf)
    s.children.extend(_mirror(c, s, worker, snode_of) for c in node.children.values())
    for c in s.children:
        s.leaves.extend(c.leaves)
    return s


class _Scheduler:
    """The scheduling tree's state: per-worker token-step clocks, per-op estimates, the
    dependency bookkeeping, and the release buffer (Alg. 1's `tree`)."""

    def __init__(self, ctx: PlanningContext, tree: TemplatedRadixTree, partition: Partition,
                 lengths: SlotLengths) -> None:
        cost = ctx.cost
        self.tree = tree
        self.clock = [0.0] * ctx.num_workers
        self.n: dict[Key, int] = {}
        self.unit: dict[Key, float] = {}  # one call's usage
        self.delay: dict[Key, float] = {}
        self.users: dict[Key, list[Key]] = {k: [] for k in tree.leaves}
        self.missing: dict[Key, int] = {}  # inputs not scheduled yet
        self.ready: dict[Key, float] = {}  # earliest start allowed by the scheduled inputs
        for key, leaf in tree.leaves.items():
            op, w = leaf.key[0], leaf.worker  # type: ignore[index]
            out = lengths(op)
            self.n[key] = partition.calls_on(op, w)
            shared = tree.static_prefix(key)
            self.unit[key] = cost.usage(tree.prompt_weight(key) - shared, out, w)
            self.delay[key] = cost.delay(out, w)
            self.missing[key] = len(leaf.deps)
            self.ready[key] = 0.0
            for d in leaf.deps:
                self.users[d].append(key)
        # dependency depth: the longest chain of dependents below the op (0 for a sink)
        self.depth: dict[Key, float] = {}
        for key in reversed(list(tree.leaves)):  # leaves were added in topological order
            self.depth[key] = 1.0 + max((self.depth[u] for u in self.users[key]), default=-1.0)
        self.start: dict[Key, float] = {}
        self.group_of: dict[Key, int] = {}
        self.groups = tree.inner_groups()
        for g, members in enumerate(self.groups):
            for k in members:
                self.group_of[k] = g
        self.pending = [len(m) for m in self.groups]
        self.buffer: dict[int, list[str]] = {}
        self.final: list[list[list[str]]] = [[] for _ in self.clock]
        # BuildSchedulingTree: the mirrored scheduling tree, one sub-root per worker
        self.snode_of: dict[Key, _SNode] = {}
        self.root = _SNode(None, -1)
        self.root.children = [_mirror(r, self.root, w, self.snode_of)
                              for w, r in tree.roots.items()]
        for c in self.root.children:
            self.root.leaves.extend(c.leaves)

    def nbytes(self) -> int:
        """Memory of the scheduler's own state (maps over leaves, groups, buffers, tree)."""
        maps = (self.n, self.unit, self.delay, self.users, self.missing, self.ready,
                self.depth, self.start, self.group_of, self.buffer, self.snode_of)
        size = sum(sys.getsizeof(m) for m in maps) + sys.getsizeof(self.groups)
        size += sum(sys.getsizeof(v) for v in self.users.values())
        size += sum(sys.getsizeof(g) for g in self.groups) + sys.getsizeof(self.final)
        stack = [self.root]
        while stack:
            s = stack.pop()
            size += sys.getsizeof(s) + sys.getsizeof(s.children) + sys.getsizeof(s.leaves)
            stack.extend(s.children)
        return size + sum(sys.getsizeof(w) + sum(sys.getsizeof(st) for st in w)
                          for w in self.final)

    # -- UpdateState ---------------------------------------------------------------------
    def _touch(self, key: Key) -> None:
        """A leaf was scheduled or became schedulable: its ancestors' states are stale."""
        s: _SNode | None = self.snode_of[key]
        while s is not None and not s.dirty:
            s.dirty = True
            s = s.parent
        # (a dirty node's ancestors are dirty: recomputing clears a node, never a parent)

    def state(self, node: _SNode) -> State:
        """The subtree's state now (cached, see `_SNode`)."""
        if not node.dirty and self.clock[node.worker] < node.state[3]:
            return node.state
        key = node.leaf
        if key is not None:
            if key in self.start or self.missing[key]:
                st = EMPTY
            else:
                r, d = self.ready[key], self.depth[key]
                st = (d, r, d, INF) if r <= self.clock[node.worker] else (-1.0, r, d, r)
        else:
            nb, early, sd, unblock = -1.0, INF, -1.0, INF
            for c in node.children:
                cs = self.state(c)
                if cs[2] < 0:
                    continue
                if cs[0] > nb:
                    nb = cs[0]
                if cs[1] < early:
                    early = cs[1]
                if cs[2] > sd:
                    sd = cs[2]
                if cs[3] < unblock:
                    unblock = cs[3]
            st = (nb, early, sd, unblock)
        node.state = st
        node.dirty = False
        return st

    # -- CanSchedule / ScheduleNode ------------------------------------------------------
    def can_schedule(self, key: Key, force: bool) -> bool:
        """Inputs scheduled and their precedence delays elapsed on the worker's clock (or,
        forced, elapsed at all: the op then starts when they do)."""
        if key in self.start or self.missing[key]:
            return False
        return force or self.ready[key] <= self.clock[self.snode_of[key].worker]

    def schedule_leaf(self, key: Key) -> None:
        w = self.snode_of[key].worker
        s = max(self.clock[w], self.ready[key])
        self.start[key] = s
        self.clock[w] = s + self.n[key] * self.unit[key]
        self._touch(key)
        # a dependent may start once the op's first call is done and d has passed
        avail = s + self.unit[key] + self.delay[key]
        for u in self.users[key]:
            if avail > self.ready[u]:
                self.ready[u] = avail
            self.missing[u] -= 1
            if not self.missing[u]:
                self._touch(u)
        g = self.group_of[key]
        self.buffer.setdefault(g, []).append(key[0])  # type: ignore[index]
        self.pending[g] -= 1
        if self.pending[g] == 0:  # release the whole inner sequence at once
            self.final[w].append(self.buffer.pop(g))

    # -- SelectChildren ------------------------------------------------------------------
    def select_child(self, node: _SNode, force: bool) -> _SNode | None:
        """The next child to visit, or None when no child can make progress.

        Unforced: among children with a leaf that can start now, the greatest dependency
        depth of such a leaf, then the earliest schedulable token step. Forced: among
        children with a schedulable leaf, the earliest token step, then the greatest depth.
        Ties go to the child the fewest tied siblings depend on (sibling dependency depth),
        then to TRT order."""
        best: list[_SNode] = []
        best_key: tuple[float, float] | None = None
        for c in node.children:
            nb, early, sd, _ = self.state(c)
            if force:
                if sd < 0:
                    continue
                key = (early, -sd)
            else:
                if nb < 0:
                    continue
                key = (-nb, early)
            if best_key is None or key < best_key:
                best_key, best = key, [c]
            elif key == best_key:
                best.append(c)
        if len(best) <= 1:
            return best[0] if best else None
        return self._first_by_sibling_depth(node, best)

    def _first_by_sibling_depth(self, node: _SNode, cands: list[_SNode]) -> _SNode:
        """The first candidate of least depth in the sibling dependency graph (edge A -> B:
        an unscheduled leaf below B reads one below A), cycles collapsed (SCCs)."""
        index = {id(c): i for i, c in enumerate(cands)}
        level = node.level + 1
        preds: list[set[int]] = [set() for _ in cands]
        for j, c in enumerate(cands):
            for k in c.leaves:
                if k in self.start:
                    continue
                for d in self.tree.leaves[k].deps:
                    if d in self.start:
                        continue
                    s: _SNode | None = self.snode_of[d]
                    while s is not None and s.level > level:
                        s = s.parent
                    i = index.get(id(s)) if s is not None and s.parent is node else None
                    if i is not None and i != j:
                        preds[j].add(i)
        if not any(preds):
            return cands[0]
        # reach[i]: candidates from which i can be reached (its transitive predecessors)
        reach = [0] * len(cands)
        for i in range(len(cands)):
            seen, stack = 0, list(preds[i])
            while stack:
                p = stack.pop()
                if not seen >> p & 1:
                    seen |= 1 << p
                    stack.extend(preds[p])
            reach[i] = seen

        def depth(i: int, memo: dict[int, int]) -> int:
            if i not in memo:
                memo[i] = 0
                outside = [p for p in range(len(cands)) if reach[i] >> p & 1
                           and not reach[p] >> i & 1]  # strict predecessors (other SCCs)
                memo[i] = 1 + max((depth(p, memo) for p in outside), default=-1)
            return memo[i]

        memo: dict[int, int] = {}
        return cands[min(range(len(cands)), key=lambda i: (depth(i, memo), i))]

    # -- Alg. 1 ------------------------------------------------------------------------
    def recurse(self, node: _SNode, force: bool) -> bool:
        if node.leaf is not None:
            if self.can_schedule(node.leaf, force):
                self.schedule_leaf(node.leaf)
                return True
            return False
        while (child := self.select_child(node, force)) is not None:
            if self.recurse(child, force):
                node.children.remove(child)
            force = False  # only the first child is forced
        return not node.children

    def run(self) -> int:
        """Schedule (lines 4-5): unforced passes, a forced one whenever they get stuck.
        Returns the number of forced passes."""
        forced = 0
        while not self.recurse(self.root, False):
            self.recurse(self.root, True)  # force progress if stuck
            forced += 1
        return forced


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
    base = evaluate_schedule(sched, inst, ctx.cost)
    starts = [base.orders]
    assign = [sched.partition.worker_of(op, q) for op, q in inst.keys]
    other = evaluate_schedule(replace(lspf(ctx), partition=sched.partition), inst, ctx.cost)
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
    passes = sched.run()
    stages = tuple(tuple(tuple(st) for st in sched.final[w]) for w in range(ctx.num_workers))
    t2 = time.perf_counter()
    return Schedule("helium", partition, stages, "best_effort",
                    stats={"forced_passes": passes, "trt_ms": (t1 - t0) * 1e3,
                           "cas_ms": (t2 - t1) * 1e3, "trt_bytes": tree.nbytes(),
                           "scheduler_bytes": sched.nbytes(),
                           "trt_nodes": sum(1 for _ in tree.nodes())})
