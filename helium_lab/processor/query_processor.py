"""The query processor: a pure state machine between a soft schedule and the engines.

    proc = QueryProcessor(plan, schedule, tokenizer, ProcessorConfig())
    calls = proc.start()                      # submit these
    calls = proc.on_finished(result)          # ... and these, after each completion
    proc.done, proc.outputs(), proc.records

It never sleeps, awaits or reads a clock: the backend driver owns time and reports it in
`CallResult`. A call is rendered the moment its inputs complete (no batch barrier) and
queued on its worker; the processor submits queued calls in schedule-rank order, up to the
back-pressure limits, best effort (a ready call may pass a blocked one) unless the schedule
is strict.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass, replace

from helium_lab.dsl.graph import Graph
from helium_lab.dsl.ops import LambdaOp, LLMOp, OutputOp
from helium_lab.op_value import op_value
from helium_lab.optimizer.cache_substitution import message_texts
from helium_lab.optimizer.prompt_cache import lambda_signature, llm_signature
from helium_lab.plan import Plan
from helium_lab.processor.calls import (
    CallRecord,
    CallResult,
    LLMCall,
    prompt_key,
)
from helium_lab.processor.config import ProcessorConfig
from helium_lab.processor.discipline import make_discipline
from helium_lab.processor.routing import make_router
from helium_lab.processor.step_graph import StepGraph, StepTracker
from helium_lab.prompt import Segment, Slot, Static, render, segments
from helium_lab.scheduling.dispatch import dispatch_rule
from helium_lab.scheduling.schedule import Schedule
from helium_lab.tokenizer import Tokenizer

CallKey = tuple[str, int]  # (op id, query)


@dataclass
class _Queued:
    call: LLMCall
    static_key: int


class PieceEncoder:
    """Token ids and `prompt_key` bytes of prompt pieces, memoised: static text recurs in
    every query and upstream outputs in every consumer, so a prompt's key is a join of
    cached bytes. Bounded by the tokens it holds (oldest pieces go first)."""

    def __init__(self, tokenizer: Tokenizer, max_tokens: int = 1 << 22) -> None:
        self.tok = tokenizer
        self.max_tokens = max_tokens
        self._memo: dict[str, tuple[tuple[int, ...], bytes]] = {}
        self._held = 0

    def encode(self, text: str) -> tuple[tuple[int, ...], bytes]:
        got = self._memo.get(text)
        if got is None:
            ids = tuple(self.tok.encode(text))
            got = self._memo[text] = (ids, prompt_key(ids))
            self._held += len(ids)
            while self._held > self.max_tokens and len(self._memo) > 1:
                self._held -= len(self._memo.pop(next(iter(self._memo)))[0])
        return got


class QueryProcessor:
    """Follows `schedule` best-effort and renders prompts as their inputs complete."""

    def __init__(self, plan: Plan, schedule: Schedule, tokenizer: Tokenizer,
                 config: ProcessorConfig | None = None) -> None:
        self.plan, self.schedule, self.tok = plan, schedule, tokenizer
        self.cfg = config or ProcessorConfig()
        self.graph = plan.graph
        self.workers = schedule.num_workers
        self.router = make_router(self.cfg.router)
        self.discipline = make_discipline(self.cfg.discipline, self.cfg.agent_capacity)
        self._rule = dispatch_rule(schedule.dispatch)
        self.records: list[CallRecord] = []
        self.cache_updates: list[tuple[str, str]] = []
        self._segs = {op.id: segments(self.graph, op) for op in self.graph.llm_ops}
        self._pieces = PieceEncoder(tokenizer)
        self._values: dict[CallKey, str] = {}
        self._missing: dict[CallKey, int] = {}
        self._calls: dict[int, tuple[LLMCall, CallKey]] = {}
        self._heaps: list[list[tuple[Hashable, int, _Queued]]] = [
            [] for _ in range(1 if self.router else self.workers)]
        self._seq = 0
        self._inflight = [0] * self.workers
        self._inflight_op: dict[str, int] = {}
        self._outstanding = 0
        self._strict: list[deque[CallKey]] | None = None
        self._unvalued = 0
        self._started = False
        self._prio: dict[CallKey, int] = {}
        self._issued: set[CallKey] = set()  # LLM calls this run will submit
        self._steps: StepTracker | None = None
        self._step_updates: list[dict[str, int]] = []
        self._reuse = (prefix_reuse(self.graph, self._segs)
                       if self.cfg.retain_prefixes and self.router is None else {})

    # -- public interface ----------------------------------------------------------------
    def start(self) -> list[LLMCall]:
        """Resolve everything known before execution and return the first calls."""
        if self._started:
            raise RuntimeError("QueryProcessor.start called twice")
        self._started = True
        needed = self._needed_calls()
        self._unvalued = len(needed)
        llm = self.graph.llm_ops  # in the graph's topological order
        issued = [(op.id, q) for q in range(self.plan.size) for op in llm  # program order
                  if (op.id, q) in needed and q not in self.plan.fetched.get(op.id, {})]
        self._issued = set(issued)
        self.discipline.prepare(self.graph, issued)
        if self._rule.holds_order:
            self._strict = self._strict_orders(issued)
        self._prio = self._call_priorities(issued)
        if self.cfg.step_graph:
            runs: dict[str, int] = {}
            for oid, _ in issued:
                runs[oid] = runs.get(oid, 0) + 1
            self._steps = StepTracker(StepGraph.of(self.graph), runs)
        for q in range(self.plan.size):
            for oid in self.graph.order:
                key = (oid, q)
                if key not in needed:
                    continue
                hit = self.plan.fetched.get(oid, {}).get(q)
                if hit is not None:
                    self._values[key] = hit
                    self._unvalued -= 1
                    continue
                deps = self.graph.ops[oid].inputs()
                self._missing[key] = (sum(1 for d in deps if (d, q) not in self._values)
                                      + (self.discipline.gates(key) if key in self._issued
                                         else 0))
                if self._missing[key] == 0:
                    self._resolve(key)
        return self._entered(self._dispatch())

    def on_finished(self, result: CallResult) -> list[LLMCall]:
        """Record a completed call, render what it unblocks, and return calls to submit."""
        call, key = self._calls.pop(result.call_id)
        self._inflight[call.worker] -= 1
        self._inflight_op[call.op] -= 1
        self._outstanding -= 1
        self.records.append(CallRecord.of(call, result))
        if call.signature is not None:
            self.cache_updates.append((call.signature, result.output_text))
        if self._steps is not None and (steps := self._steps.finished(call.op)) is not None:
            self._step_updates.append(steps)
        self._complete(key, result.output_text)
        for gated in self.discipline.on_finished(key):
            self._missing[gated] -= 1
            if self._missing[gated] == 0:
                self._resolve(gated)
        return self._entered(self._dispatch())

    @property
    def issued(self) -> frozenset[CallKey]:
        """The LLM calls (op id, query) this run submits: known once `start` ran; a client
        program that decides its own order runs exactly these (runtime/programs)."""
        return frozenset(self._issued)

    @property
    def done(self) -> bool:
        return self._started and self._unvalued == 0

    def step_graph_updates(self) -> list[dict[str, int]]:
        updates, self._step_updates = self._step_updates, []
        return updates

    def stuck(self) -> dict[str, list[CallKey]]:
        """Diagnostics: calls waiting for inputs, and queued calls not yet submitted."""
        waiting = [k for k, m in self._missing.items() if m > 0]
        queued = [(i[2].call.op, i[2].call.query) for h in self._heaps for i in h]
        return {"waiting": waiting, "queued": queued}

    def outputs(self) -> list[dict[str, str]]:
        """Final outputs of each query, by output name."""
        outs = [op for op in self.graph.outputs if isinstance(op, OutputOp)]
        return [{op.name: self._values[(op.id, q)] for op in outs}
                for q in range(self.plan.size)]

    def prewarm_prompts(self) -> dict[int, list[tuple[int, ...]]]:
        """Static prefixes to pre-warm on each worker (proactive KV caching)."""
        if not self.cfg.prewarm:
            return {}
        out: dict[int, list[tuple[int, ...]]] = {}
        for oid, text in self.plan.static_prefixes.items():
            ids = tuple(self.tok.encode(text))
            ws = (range(self.workers) if self.router else
                  self.schedule.partition.workers_of(oid))
            for w in ws:
                if ids not in out.setdefault(w, []):
                    out[w].append(ids)
        return out

    def _entered(self, calls: list[LLMCall]) -> list[LLMCall]:
        """Calls about to be sent: each item enters its agent (KVFlow's `node_started`)."""
        if self._steps is not None:
            for call in calls:
                if (steps := self._steps.started(call.op)) is not None:
                    self._step_updates.append(steps)
        return calls

    # -- dataflow ------------------------------------------------------------------------
    def _needed_calls(self) -> set[CallKey]:
        """(op, query) pairs some output needs, given the per-query cache hits."""
        needed: set[CallKey] = set()
        for q in range(self.plan.size):
            stack = [op.id for op in self.graph.outputs]
            while stack:
                oid = stack.pop()
                if (oid, q) in needed:
                    continue
                needed.add((oid, q))
                if q not in self.plan.fetched.get(oid, {}):
                    stack.extend(self.graph.ops[oid].inputs())
        return needed

    def _complete(self, key: CallKey, value: str) -> None:
        self._values[key] = value
        self._unvalued -= 1
        oid, q = key
        for user in self.graph.users[oid]:
            ukey = (user, q)
            if ukey in self._missing and ukey not in self._values:
                self._missing[ukey] -= 1
                if self._missing[ukey] == 0:
                    self._resolve(ukey)

    def _resolve(self, key: CallKey) -> None:
        """All inputs of `key` are known: evaluate it, or queue its LLM call."""
        oid, q = key
        op = self.graph.ops[oid]
        if isinstance(op, LLMOp):
            self._enqueue(op, q)
            return
        value = op_value(op, q, self.plan.bound, lambda d: self._values[(d, q)])
        if isinstance(op, LambdaOp) and op.cacheable:
            self.cache_updates.append((lambda_signature(op, [self._values[(a, q)]
                                                             for a in op.args]), value))
        self._complete(key, value)

    def _enqueue(self, op: LLMOp, q: int) -> None:
        ids: list[int] = []
        packed: list[bytes] = []
        pieces: list[tuple[int, bool]] = []
        segs = self._segs[op.id]
        for seg, text in zip(segs, render(segs, lambda d: self._values[(d, q)]), strict=True):
            seg_ids, seg_key = self._pieces.encode(text)
            ids.extend(seg_ids)
            packed.append(seg_key)
            pieces.append((len(ids), isinstance(seg, Static)))
        prompt = tuple(ids)
        msgs = tuple(message_texts(op.messages, {d: self._values[(d, q)] for d in op.inputs()}))
        sig = (llm_signature(self.cfg.namespace, msgs, op.sampling, op.profile)
               if op.cacheable else None)
        key = b"".join(packed)  # = prompt_key(prompt), from the pieces' keys
        out_len = op.profile.length_for(key, op.sampling.max_tokens)
        worker = self.schedule.partition.worker_of(op.id, q)
        retain, release = self._retention(op.id, q, worker, pieces)
        call = LLMCall(self._seq, q, op.id, worker, prompt, tuple(pieces), out_len,
                       op.sampling, self._prio.get((op.id, q), 0), sig, msgs, retain, release,
                       key)
        static_key = hash(prompt[:pieces[0][0]]) if pieces and pieces[0][1] else 0
        self._calls[call.call_id] = (call, (op.id, q))
        heap = self._heaps[0 if self.router else worker]
        heapq.heappush(heap, (self._rule.priority(self.schedule, op.id, q), self._seq,
                              _Queued(call, static_key)))
        self._seq += 1

    def _retention(self, op: str, q: int, worker: int, pieces: list[tuple[int, bool]]
                   ) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Prefix lengths this call should retain for, and release from, other calls of
        query `q` that run on the same worker (see `prefix_reuse`)."""
        if not self._reuse:
            return (), ()
        part = self.schedule.partition

        def live(other: str) -> bool:
            return (other, q) in self._issued and part.worker_of(other, q) == worker

        retain = tuple(pieces[n - 1][0] for b, n in self._reuse[op][0] if live(b))
        release = tuple(pieces[n - 1][0] for a, n in self._reuse[op][1] if live(a))
        return retain, release

    # -- dispatch ------------------------------------------------------------------------
    def _call_priorities(self, issued: list[CallKey]) -> dict[CallKey, int]:
        """Each LLM call's position in the dispatch order, as the integer priority an
        engine with a priority queue uses (lower runs earlier)."""
        prio = self._rule.priority
        keys = sorted(issued, key=lambda k: (prio(self.schedule, *k), k[1], k[0]))
        return {k: i for i, k in enumerate(keys)}

    def _strict_orders(self, issued: list[CallKey]) -> list[deque[CallKey]]:
        orders: list[deque[CallKey]] = [deque() for _ in range(self.workers)]
        for op, q in sorted(issued, key=lambda k: self.schedule.rank(*k)):
            orders[self.schedule.partition.worker_of(op, q)].append((op, q))
        return orders

    def _room(self, w: int, op: str) -> bool:
        c = self.cfg
        return (self._inflight[w] < c.max_inflight_per_worker
                and (c.max_inflight_total is None or self._outstanding < c.max_inflight_total)
                and (c.max_inflight_per_op is None
                     or self._inflight_op.get(op, 0) < c.max_inflight_per_op))

    def _dispatch(self) -> list[LLMCall]:
        out: list[LLMCall] = []
        scan_all = self.cfg.max_inflight_per_op is not None or self.cfg.router == "prefix_affinity"
        for heap in self._heaps:
            held: list[tuple[Hashable, int, _Queued]] = []
            while heap:
                item = heapq.heappop(heap)
                call = item[2].call
                if self._strict is not None:
                    order = self._strict[call.worker]
                    if not order or order[0] != (call.op, call.query):
                        held.append(item)
                        continue
                w = call.worker if self.router is None else self.router.pick(
                    call, self._inflight, item[2].static_key)
                if not self._room(w, call.op):
                    held.append(item)
                    if scan_all:
                        continue
                    break
                if self._strict is not None:
                    self._strict[call.worker].popleft()
                if w != call.worker:
                    call = replace(call, worker=w)
                    self._calls[call.call_id] = (call, self._calls[call.call_id][1])
                self._inflight[w] += 1
                self._inflight_op[call.op] = self._inflight_op.get(call.op, 0) + 1
                self._outstanding += 1
                out.append(call)
            for item in held:
                heapq.heappush(heap, item)
        return out


Reuse = dict[str, tuple[list[tuple[str, int]], list[tuple[str, int]]]]


def prefix_reuse(graph: Graph, segs: dict[str, tuple[Segment, ...]]) -> Reuse:
    """For each LLM op: (consumers, producers) of dynamic prompt prefixes, from the prompt
    templates (the TRT's structure). Op B consumes op A's prefix when B runs after A (B
    depends on A) and their templates start with the same segments, at least one of them a
    placeholder (static-only prefixes are the prewarm's business); the int is the number
    of shared segments. Example: round 2 of a debater repeats its round-1 prompt up to the
    debate so far, so round 1 retains that prefix until round 2 is admitted."""
    llm = [op.id for op in graph.llm_ops]
    out: Reuse = {oid: ([], []) for oid in llm}
    for a in llm:
        below = _descendants(graph, a)
        for b in llm:
            if b == a or b not in below:
                continue
            n = 0
            sa, sb = segs[a], segs[b]
            while n < min(len(sa), len(sb)) and sa[n] == sb[n]:
                n += 1
            if n and any(isinstance(x, Slot) for x in sa[:n]):
                out[a][0].append((b, n))
                out[b][1].append((a, n))
    return out


def _descendants(graph: Graph, root: str) -> set[str]:
    seen: set[str] = set()
    stack = list(graph.users[root])
    while stack:
        oid = stack.pop()
        if oid not in seen:
            seen.add(oid)
            stack.extend(graph.users[oid])
    return seen
