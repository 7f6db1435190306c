"""One engine's iteration-level scheduler: vLLM v1's `Scheduler.schedule` and its update.

Each step gets a token budget (`max_num_batched_tokens`):

1. Running requests, in order, each get `num_tokens - num_computed_tokens` tokens (one for
   a decode, the rest of the prompt for a prefill, capped by the budget: chunked prefill).
   If their KV blocks cannot be allocated, the queue order's victim (the newest running
   request under FCFS) is preempted by recompute: its blocks are freed and it returns to
   the front of the waiting queue with `num_computed_tokens = 0`. If the victim is the
   request itself, the running pass stops (the step may then be empty: with the
   priority order a re-admitted request can precede, and be the victim of, itself).
2. Only if nothing was preempted, waiting requests are admitted in queue order while
   budget and `max_num_seqs` allow: a prefix-cache lookup, then allocation of the first
   chunk (admission requires the whole current sequence to fit, as vLLM's
   `scheduler_reserve_full_isl`). The first admission that fails ends the pass.

`update` then plays the forward pass's outcome: requests whose computed tokens caught up
sample one token; those that reach `max_tokens` finish and free their blocks.
Pure logic: no SimPy, times are passed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from helium_lab.config import EngineSettings
from sim.cost_model import StepTotals
from sim.errors import SimError
from sim.kv_cache import NO_HIT, KVCacheManager
from sim.queue_policy import WaitingQueue
from sim.request import SimRequest, Status


class Chunk(NamedTuple):
    """Tokens of one request computed in a step, after `context_len` already computed."""

    req: SimRequest
    num_tokens: int
    context_len: int
    is_decode: bool


@dataclass(frozen=True)
class SchedulerOutput:
    """One step's schedule, stored so that decodes cost no object of their own.

    `requests` are the scheduled requests in schedule order and `contexts[k]` the tokens
    `requests[k]` had computed before its chunk. A request in `prefills` (request id ->
    (tokens, context), schedule order) computes that many tokens; every other one is a
    decode: one token, `Chunk.is_decode`. `chunks` spells this out as `Chunk`s.
    """

    requests: tuple[SimRequest, ...]
    contexts: tuple[int, ...]
    prefills: dict[int, tuple[int, int]]
    preempted: tuple[SimRequest, ...]

    @property
    def chunks(self) -> tuple[Chunk, ...]:
        """The step's chunks in schedule order (built on demand: tests and logs)."""
        pre = self.prefills
        return tuple(Chunk(r, pre[r.request_id][0], ctx, False) if r.request_id in pre
                     else Chunk(r, 1, ctx, True)
                     for r, ctx in zip(self.requests, self.contexts, strict=True))

    @property
    def num_batched_tokens(self) -> int:
        return len(self.requests) - len(self.prefills) + sum(
            n for n, _ in self.prefills.values())

    def totals(self) -> StepTotals:
        """What the cost model reads of this step: the same sums as `BatchShape`, bit for
        bit. The float sum over prefill chunks runs in schedule order, as `BatchShape`'s;
        every other sum is of ints, hence exact in any grouping (the decodes' attention
        pairs, sum of context + 1, are the decodes' contexts plus their count)."""
        num_decodes = len(self.requests) - len(self.prefills)
        kv_read = sum(self.contexts)
        tokens = num_decodes
        decode_ctx = kv_read
        prefill_pairs = 0.0
        for n, ctx in self.prefills.values():
            tokens += n
            decode_ctx -= ctx
            prefill_pairs += n * (ctx + (n + 1) / 2)
        return StepTotals(tokens, len(self.requests), prefill_pairs + (decode_ctx + num_decodes),
                          kv_read)


class Scheduler:
    """Continuous batching with chunked prefill, prefix caching and recompute preemption,
    within `settings`' batch limits and queue order."""

    def __init__(self, settings: EngineSettings, kv: KVCacheManager,
                 waiting: WaitingQueue) -> None:
        self.settings = settings
        self.kv = kv
        self.waiting = waiting
        self.running: list[SimRequest] = []
        self.num_preemptions = 0

    def add(self, req: SimRequest) -> None:
        req.status = Status.WAITING
        self.waiting.add(req)

    def has_work(self) -> bool:
        return bool(self.running) or len(self.waiting) > 0

    def schedule(self, now: float) -> SchedulerOutput:
        """Pick this step's chunks (advancing each request's computed tokens by its
        chunk) and preempt what must make room.

        The scheduled requests are always a prefix of `running` (the running pass visits
        it in order, a preempted request leaves it, admitted ones are appended, and
        admission runs only when the pass reached the end), so per request the step
        records only its context, plus (tokens, context) for the few non-decodes."""
        if self.kv.loads is not None:
            self.kv.loads.complete(now)
        budget = self.settings.max_num_batched_tokens
        contexts: list[int] = []  # contexts[k]: running[k]'s context before its chunk
        prefills: dict[int, tuple[int, int]] = {}
        preempted: list[SimRequest] = []
        running = self.running
        allocate = self.kv.allocate_slots
        append_context = contexts.append
        i = 0
        while i < len(running) and budget > 0:
            req = running[i]
            computed = req.num_computed_tokens
            n = req.num_tokens - computed
            if n > budget:
                n = budget
            upto = computed + n
            if upto > req.kv_slots or upto >= req.kv_cache_next:  # else: nothing to do
                scheduled = True
                while not allocate(req, n):
                    victim = self.waiting.victim(running)
                    j = running.index(victim)
                    del running[j]
                    if j < i:  # scheduled already: undo its chunk
                        i -= 1
                        del contexts[j]
                        undone = prefills.pop(victim.request_id, None)
                        budget += 1 if undone is None else undone[0]
                    self._preempt(victim)
                    preempted.append(victim)
                    if victim is req:
                        scheduled = False
                        break
                if not scheduled:
                    break
            if n < 1:
                raise SimError(f"internal: {req.name} scheduled {n} tokens after "
                               f"{computed} of {req.num_tokens}")
            if n != 1 or req.num_output == 0 or upto != req.num_tokens:  # not a decode
                prefills[req.request_id] = (n, computed)
            append_context(computed)
            req.num_computed_tokens = upto  # a later preemption resets it to 0
            budget -= n
            i += 1
        if not preempted:
            budget = self._admit(now, budget, contexts, prefills)
        return SchedulerOutput(tuple(running[:len(contexts)]), tuple(contexts), prefills,
                               tuple(preempted))

    def update(self, out: SchedulerOutput, now: float) -> list[SimRequest]:
        """Apply a finished step at time `now`; return requests that finished, in order."""
        finished: list[SimRequest] = []
        for req in out.requests:
            if req.num_computed_tokens < req.num_tokens:
                continue  # a prefill chunk that did not reach the end: nothing sampled
            req.num_output += 1  # SimRequest.sample(), inlined: the hottest loop
            req.num_tokens += 1
            if req.first_token_t is None:
                req.first_token_t = now
            if req.num_output >= req.max_tokens:
                req.status = Status.FINISHED
                req.finish_t = now
                self.kv.free(req)
                finished.append(req)
        for req in finished:  # few per step: a C-level scan each beats rebuilding the list
            self.running.remove(req)  # (identity: SimRequest compares by identity)
        return finished

    # -- runs of identical decode steps (the engine's fast path) ------------------------

    def decode_run_length(self) -> int:
        """How many next steps are pure decodes of exactly the running requests: every
        one of them a token from being computed, all within the budget, none finishing,
        free blocks for every block they grow into, and nothing admissible meanwhile
        (`_admission_blocked_for`). The step that finishes a request or admits one is
        left to `schedule`. 0 if not in that state."""
        if not self.running or len(self.running) > self.settings.max_num_batched_tokens:
            return 0
        steps = 1 << 30
        for r in reversed(self.running):  # newest first: a prefill is most likely there
            if r.num_output == 0 or r.num_computed_tokens != r.num_tokens - 1:
                return 0
            left = r.max_tokens - r.num_output - 1
            if left < steps:
                steps = left
        if steps > 1:
            steps = self.kv.max_decode_steps(self.running, steps)
        if steps > 1 and len(self.waiting):
            steps = self._admission_blocked_for(steps)
        return steps

    def _admission_blocked_for(self, steps: int) -> int:
        """For how many of the next `steps` decode steps (from the start) the waiting
        queue's head stays unadmittable; 0 if it is admissible now. Decodes only take free
        blocks or evict, so a failing admission keeps failing unless its prefix hit grows,
        which happens only when a decode fills the very block its lookup misses: the run
        stops before that step. Orders that re-sort on the cache (lspf) get 0."""
        budget = self.settings.max_num_batched_tokens - len(self.running)
        if budget <= 0 or len(self.running) >= self.settings.max_num_seqs:
            return steps  # admission is not even attempted
        if self.settings.queue_order == "lspf":
            return 0
        head = self.waiting.peek()
        hit = self.kv.find_cached_prefix(head) if head.num_computed_tokens == 0 else NO_HIT
        if hit.host_hashes and self.kv.loads is not None:
            return 0  # deferred mode: admission passes it over (and may start a load)
        n = min(head.num_tokens - head.num_computed_tokens - hit.num_tokens, budget)
        if self.kv.fits(head, n, hit, full_sequence_must_fit=True):
            return 0
        bs = self.kv.block_size
        miss = hit.num_tokens // bs  # the first block on no tier
        if (head.num_computed_tokens or not self.kv.enable_caching
                or miss >= (head.num_tokens - 1) // bs):
            return steps  # no lookup, or the hit is already as long as a lookup allows
        target = self.kv.hashes_of(head)[miss]  # identifies head's whole prefix
        for r in self.running:
            mine = self.kv.hashes_of(r)
            if len(mine) > miss and mine[miss] == target:
                fill = (miss + 1) * bs - r.num_computed_tokens  # the step that fills it
                if 1 <= fill <= steps:  # (the schedule of that step caches it)
                    steps = fill - 1
        return steps

    def apply_decode_steps(self, steps: int) -> None:
        """Play `steps` (<= `decode_run_length()`) pure-decode steps: slots, then tokens."""
        self.kv.append_decode_slots(self.running, steps)
        bs = self.kv.block_size
        fills: list[tuple[int, int, int]] = []  # (step, running index, tokens computed)
        for i, r in enumerate(self.running):
            c0 = r.num_computed_tokens
            for s in range(bs - c0 % bs, steps + 1, bs):  # steps where a block fills
                fills.append((s, i, c0 + s))
            r.num_computed_tokens += steps
            r.num_output += steps  # r.sample(steps), inlined
            r.num_tokens += steps
        fills.sort()
        for _, i, upto in fills:  # cache in the order step-by-step decoding would
            self.kv.cache_upto(self.running[i], upto)

    # -- internals -----------------------------------------------------------------------

    def _admit(self, now: float, budget: int, contexts: list[int],
               prefills: dict[int, tuple[int, int]]) -> int:
        """Admit waiting requests in queue order; record their chunks as `schedule` does."""
        if not len(self.waiting) or len(self.running) >= self.settings.max_num_seqs:
            return budget
        self.waiting.begin_admission(self.kv)
        loads = self.kv.loads
        skipped: list[SimRequest] = []  # waiting on a background load (deferred mode)
        while budget > 0 and len(self.waiting) and len(self.running) < self.settings.max_num_seqs:
            req = self.waiting.peek()
            hit = self.kv.find_cached_prefix(req) if req.num_computed_tokens == 0 else NO_HIT
            if loads is not None and hit.host_hashes:
                # KVFlow: a chain on the host starts loading (denied: retried next step),
                # a chain loading waits; either way the request is passed over
                todo = [h for h in hit.host_hashes if h not in loads.loading]
                if todo:
                    loads.start(now, todo, prefetch=False)
                skipped.append(self.waiting.pop())
                continue
            n = min(req.num_tokens - req.num_computed_tokens - hit.num_tokens, budget)
            if not self.kv.allocate_slots(req, n, hit, full_sequence_must_fit=True):
                break
            self.kv.record_lookup(req, hit)
            self.waiting.pop()
            self.running.append(req)
            if req.cached_tokens is None:
                req.cached_tokens = hit.num_tokens
                req.start_t = now
                if req.call is not None:  # pins this call was the awaited consumer of
                    for length in req.call.release:
                        self.kv.unpin_request_prefix(req, length)
            req.status = Status.RUNNING
            req.num_computed_tokens += hit.num_tokens
            computed = req.num_computed_tokens
            if n < 1 or computed + n > req.num_tokens:
                raise SimError(f"internal: {req.name} scheduled {n} tokens after "
                               f"{computed} of {req.num_tokens}")
            if n != 1 or req.num_output == 0 or computed != req.num_tokens - 1:
                prefills[req.request_id] = (n, computed)
            contexts.append(computed)
            req.num_computed_tokens = computed + n
            budget -= n
        for req in reversed(skipped):  # back at the head, in their order
            self.waiting.prepend(req)
        return budget

    def _preempt(self, req: SimRequest) -> None:
        self.kv.free(req)
        req.status = Status.PREEMPTED
        req.num_computed_tokens = 0
        req.num_preemptions += 1
        self.num_preemptions += 1
        self.waiting.prepend(req)
