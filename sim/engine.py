"""A simulated vLLM engine for one worker: a SimPy process stepping the scheduler.

Each iteration: schedule a batch, hold the engine for the cost model's step time, then
apply the step (sample tokens, finish requests) and report each finished call's
`CallResult` to the completion callback, all at the step's end time. An idle engine
sleeps until `submit` or `prewarm` wakes it. Calls that arrive during a step join the
waiting queue and are considered at the next step, as in vLLM.

Implements `helium_lab.backend.Engine` (submit / prewarm / stats).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Generator, Mapping
from itertools import accumulate
from typing import Any

import simpy

from helium_lab.backend import EngineSample
from helium_lab.processor.calls import CallResult, LLMCall, synthetic_completion
from helium_lab.tokenizer import Tokenizer
from sim.config import HARD_PIN_FRACTION, EngineConfig
from sim.cost_model import CostModel, decode_run_times
from sim.errors import SimError
from sim.host_cpu import SharedCores
from sim.host_tier import HostTier
from sim.kv_cache import KVCacheManager
from sim.kv_holding import StepHolding
from sim.queue_policy import make_queue
from sim.request import SimRequest
from sim.scheduler import Scheduler

IterationSample = EngineSample
"""One engine step: start, duration, requests running and waiting after scheduling, tokens
batched, KV usage after scheduling."""

OutputSource = Callable[[LLMCall, Tokenizer], tuple[str, tuple[int, ...]]]
"""Where a call's output comes from: (text, token ids), at least `call.output_tokens` ids
(extra ones are cut). `synthetic_completion` by default; validation replays real ones."""


class SimEngine:
    """One worker's engine. Construct it, then call `submit`/`prewarm`; no side effects
    until the SimPy environment runs."""

    def __init__(self, env: simpy.Environment, config: EngineConfig, cost_model: CostModel,
                 tokenizer: Tokenizer, on_finish: Callable[[CallResult], None],
                 worker: int = 0, fast_decode: bool = True,
                 outputs: OutputSource = synthetic_completion,
                 cores: SharedCores | None = None, step_threads: float = 1.0) -> None:
        """`cores`: the host's shared cores, when the engine's steps are CPU work on them
        (`sim/host_cpu.py`: a step takes its cost model's time alone, longer when the
        cores are shared; step by step, no fast decode path); `step_threads`: the runnable
        threads a step weighs there (above 1 for an API server's engine: its engine core
        polls the worker)."""
        self.env = env
        self.outputs = outputs
        self.cores = cores
        self.step_threads = step_threads
        if cores is not None and config.host_tier is not None:
            raise SimError(f"worker {worker}: a host KV tier on an engine whose steps run on "
                           "shared host cores is not modelled")
        self.fast_decode = fast_decode and cores is None
        self.config = config
        self.settings = config.settings
        self.cost_model = cost_model
        self.tokenizer = tokenizer
        self.on_finish = on_finish
        self.worker = worker
        self.kv = KVCacheManager(config.num_gpu_blocks, config.block_size,
                                 config.settings.enable_prefix_caching)
        if config.settings.prewarm_pin == "hard":
            self.kv.hard_pin_limit = int(config.num_gpu_blocks * HARD_PIN_FRACTION)
        self.host: HostTier | None = None
        if config.host_tier is not None:
            self.host = HostTier(config.host_tier, config.block_size)
            self.kv.attach_host(self.host, deferred=self.settings.host_kv_load == "deferred")
        if self.settings.kv_eviction == "steps_to_execution":
            self.kv.pool.set_holding(StepHolding(self.settings.kv_hold_steps))
        self.scheduler = Scheduler(self.settings, self.kv, make_queue(self.settings.queue_order))
        self.timeseries: list[IterationSample] = []
        self.num_finished = 0
        self.num_prewarms = 0
        self.num_prewarms_skipped = 0
        self._next_id = 0
        self._pending_prewarms = 0
        self._prewarm_waiters: list[simpy.Event] = []
        self._hit_mark = (0, 0, 0)  # lookup counters at the last recorded step
        # KVFlow's `agent_to_last_nodes`: per agent (op), the deepest prefixes its requests
        # matched, by last hash (none an ancestor of another)
        self._agent_chains: dict[str, dict[bytes, tuple[bytes, ...]]] = {}
        self._step_updates: list[Mapping[str, int]] = []  # received, not yet handled
        self._wakeup = env.event()
        self._proc = env.process(self._run())

    # -- Engine protocol ------------------------------------------------------------------

    def submit(self, call: LLMCall, submit_t: float | None = None) -> None:
        """Queue `call` (stamped `submit_t`, default now). Raises SimError if it can't run."""
        if call.output_tokens < 1:
            raise SimError(f"call {call.call_id} (op {call.op!r}): output_tokens must be "
                           f">= 1, got {call.output_tokens}")
        text, ids = self.outputs(call, self.tokenizer)
        ids = ids[:call.output_tokens]
        if len(ids) < call.output_tokens:
            raise SimError(f"call {call.call_id} (op {call.op!r}): its output has only "
                           f"{len(ids)} tokens, {call.output_tokens} needed")
        req = self._new_request(call.prompt_ids, ids, call.priority, call, text)
        req.submit_t = self.env.now if submit_t is None else submit_t
        if self.settings.host_kv_prefetch_steps is not None:
            self._remember_chain(call.op, self.kv.matched_chain(req))
        if self.settings.enable_prefix_caching:
            for n in call.retain:  # proactive KV: keep what a later call will extend
                self.kv.pin_request_prefix(req, n)
        self.scheduler.add(req)
        self._wake()

    def update_step_graph(self, steps: Mapping[str, int]) -> None:
        """KVFlow's `/update`, handled at the engine's next step boundary (the fork's
        scheduler handles received requests between iterations): the distances become the
        hold priorities of steps-to-execution eviction, and prefetch (`DispatchLoadTasks`)
        runs: for d = 0 .. `prefetch_steps`, the agents d steps from running (by name),
        each prefix their requests matched: its host-only blocks load back beside the
        forward passes; the first load that does not fit ends the round. Ignored unless
        the engine holds or prefetches."""
        prefetch = self.settings.host_kv_prefetch_steps is not None and self.kv.loads is not None
        if not prefetch and self.kv.pool.holding is None:
            return
        self._step_updates.append(steps)
        self._wake()  # cuts a decode run at the step in progress, as step by step

    def _handle_step_updates(self) -> None:
        updates, self._step_updates = self._step_updates, []
        if self.kv.pool.holding is not None:
            self.kv.pool.holding.update(updates[-1])
        ahead, loads = self.settings.host_kv_prefetch_steps, self.kv.loads
        if ahead is None or loads is None:
            return
        loads.complete(self.env.now)
        for steps in updates:
            self._prefetch(ahead, steps)
        for done in loads.take_started():
            self.env.process(self._wake_at(done))

    def _prefetch(self, ahead: int, steps: Mapping[str, int]) -> None:
        for d in range(ahead + 1):
            for agent in sorted(a for a, s in steps.items() if s == d):
                for chain in self._agent_chains.get(agent, {}).values():
                    if not self.kv.prefetch(chain, self.env.now):
                        return

    def _remember_chain(self, agent: str, chain: tuple[bytes, ...]) -> None:
        """Record a matched prefix for `agent` as the fork's `_update_agent_to_last_nodes`
        does: it replaces its deepest recorded ancestor, and is dropped if it is itself an
        ancestor of one recorded."""
        if not chain:
            return
        chains = self._agent_chains.setdefault(agent, {})
        if chain[-1] in chains:
            return
        for h in reversed(chain[:-1]):
            if h in chains:
                del chains[h]
                break
        n, last = len(chain), chain[-1]
        if any(len(c) > n and c[n - 1] == last for c in chains.values()):
            return
        chains[last] = chain

    def prewarm(self, prompt_ids: tuple[int, ...]) -> None:
        """Pin `prompt_ids`' full blocks as `pin_mode` says and, unless they are all cached
        already, prefill them with a max_tokens=1 request (Helium's proactive KV cache:
        evicted prefixes are recomputed when prewarmed again). No-op without prefix
        caching."""
        full = len(prompt_ids) // self.config.block_size * self.config.block_size
        if not self.settings.enable_prefix_caching or full == 0:
            return
        prefix = tuple(prompt_ids)
        hard = self.settings.prewarm_pin == "hard"
        if hard:  # runtime/pins.py: skipped only when pinned, else prefilled and pinned
            if prefix in self.kv.hard_pins:
                self.num_prewarms_skipped += 1
                return
        else:
            if self.settings.prewarm_pin == "soft":
                self.kv.pin_prefix(prefix)
            if self.kv.cached_prefix_tokens(prefix) >= full:
                self.num_prewarms_skipped += 1
                return
        req = self._new_request(prefix, (0,), -(1 << 62), None, "")
        if hard:
            self.kv.hard_pin_on_free(req, prefix)
        req.submit_t = self.env.now
        self._pending_prewarms += 1
        self.scheduler.add(req)
        self._wake()

    def stats(self) -> dict[str, float]:
        steps = self.timeseries
        n = max(sum(s.steps for s in steps), 1)
        kv = self.kv
        st = {
            "prefix_cache_queries": float(kv.num_queries),
            "prefix_cache_hits": float(kv.num_hits),
            "prefix_cache_hit_rate": kv.num_hits / kv.num_queries if kv.num_queries else 0.0,
            "kv_usage": kv.pool.usage(),
            "kv_usage_mean": sum(s.kv_usage * s.steps for s in steps) / n,
            "evicted_blocks": float(kv.pool.num_evicted),
            "evicted_pinned_blocks": float(kv.pool.num_pinned_evicted),
            "num_preemptions": float(self.scheduler.num_preemptions),
            "num_steps": float(sum(s.steps for s in steps)),
            "batch_requests_mean": sum(s.running * s.steps for s in steps) / n,
            "batch_tokens_mean": sum(s.batched_tokens * s.steps for s in steps) / n,
            "busy_s": sum(s.dt for s in steps),
            "num_finished": float(self.num_finished),
            "num_prewarms": float(self.num_prewarms),
            "num_prewarms_skipped": float(self.num_prewarms_skipped),
        }
        if self.host is not None:  # keys only with a tier: runs without one are unchanged
            hits, host = kv.num_hits, kv.num_host_hits
            q = kv.num_queries or 1
            st.update({
                "gpu_hit_tokens": float(hits),
                "host_hit_tokens": float(host),
                "miss_tokens": float(kv.num_queries - hits - host),
                "gpu_hit_rate": hits / q if kv.num_queries else 0.0,
                "host_hit_rate": host / q if kv.num_queries else 0.0,
                **self.host.stats(),
                **(self.kv.loads.stats() if self.kv.loads is not None else {}),
            })
        if kv.pool.holding is not None:  # blocks of running agents (the fork's last pass)
            st["evicted_held_blocks"] = float(kv.pool.holding.num_held_evictions)
        return st

    # -- simulation -----------------------------------------------------------------------

    def prewarmed(self) -> simpy.Event:
        """An event that fires once every prewarm submitted so far has finished."""
        ev = self.env.event()
        if self._pending_prewarms == 0:
            ev.succeed()
        else:
            self._prewarm_waiters.append(ev)
        return ev

    def _new_request(self, prompt: tuple[int, ...], output: tuple[int, ...], priority: int,
                     call: LLMCall | None, text: str) -> SimRequest:
        req = SimRequest(self._next_id, prompt, output, priority, call, text)
        self._next_id += 1
        total = len(prompt) + len(output)
        if total > self.config.max_model_len:
            raise SimError(f"{req.name} on worker {self.worker}: prompt {len(prompt)} + "
                           f"max_tokens {len(output)} = {total} tokens exceeds max_model_len "
                           f"{self.config.max_model_len} (config key engine.max_model_len, "
                           f"or the model's own limit)")
        need = self.kv.blocks_needed(total - 1)
        if need > self.kv.num_usable_blocks:
            raise SimError(f"{req.name} on worker {self.worker}: prompt {len(prompt)} + "
                           f"output {len(output)} tokens need {need} KV blocks of "
                           f"{self.config.block_size}, but the whole cache has only "
                           f"{self.kv.num_usable_blocks} (raise engine.kv_capacity_tokens)")
        return req

    def _wake(self) -> None:
        if not self._wakeup.triggered:
            self._wakeup.succeed()

    def _run(self) -> Generator[simpy.Event, Any, None]:
        sched = self.scheduler
        while True:
            if self._step_updates:
                self._handle_step_updates()
            if not sched.has_work():
                self._wakeup = self.env.event()
                yield self._wakeup
                continue
            if self.fast_decode and (steps := sched.decode_run_length()) >= 2:
                yield from self._decode_run(steps)
                continue
            t0 = self.env.now
            out = sched.schedule(t0)
            loads = self.kv.loads
            if loads is not None:
                for end in loads.take_started():
                    self.env.process(self._wake_at(end))
            if not out.requests:
                if out.preempted:
                    continue  # a request preempted itself; vLLM runs an empty step
                if loads is not None and (nxt := loads.next_done()) is not None:
                    self._wakeup = self.env.event()  # every waiting request awaits a load
                    yield self.env.timeout(nxt - t0) | self._wakeup
                    continue
                names = ", ".join(r.name for r in sched.waiting)
                raise SimError(f"worker {self.worker}: engine stalled at t={t0:.6f}s with "
                               f"nothing schedulable (waiting: {names})")
            dt = self.cost_model.step_time(out.totals())
            if self.host is None:
                self.timeseries.append(IterationSample(
                    t0, dt, len(sched.running), len(sched.waiting), out.num_batched_tokens,
                    self.kv.pool.usage(), 1))
            else:
                dt = self._host_sample(t0, dt, out.num_batched_tokens)
            if self.cores is None:
                yield self.env.timeout(dt)
            else:  # CPU work on shared cores: the step lasts as long as serving it takes
                yield self.cores.work(dt, self.step_threads)
                self.timeseries[-1] = self.timeseries[-1]._replace(dt=self.env.now - t0)
            for req in sched.update(out, self.env.now):
                self._finish(req)

    def _wake_at(self, t: float) -> Generator[simpy.Event, Any, None]:
        """Wake the engine when a background load ends (it cuts a decode run at the step
        in progress, where step-by-step scheduling would first see the loaded blocks)."""
        yield self.env.timeout(t - self.env.now)
        self._wake()

    def _decode_run(self, steps: int) -> Generator[simpy.Event, Any, None]:
        """Up to `steps` identical pure-decode steps as one timeout (the fast path).

        Step-by-step, a call submitted during step j is first seen when step j ends, so
        an arrival cuts the run at the end of the step in progress; the steps played are
        exactly those the step-by-step loop would have run, with the same durations.
        """
        sched, t0 = self.scheduler, self.env.now
        n = len(sched.running)
        ctx = sum(r.num_computed_tokens for r in sched.running)
        # the step ends: t0 + dt0, then + dt1, ... (the same float additions, in C)
        ends = list(accumulate(decode_run_times(self.cost_model, n, ctx, steps), initial=t0))
        del ends[0]
        self._wakeup = self.env.event()
        yield self.env.timeout(ends[-1] - t0) | self._wakeup
        played = steps
        if self.env.now < ends[-1]:  # woken by a submit or prewarm during step j + 1
            played = bisect.bisect_right(ends, self.env.now) + 1
            yield self.env.timeout(ends[played - 1] - self.env.now)
        self.timeseries.append(IterationSample(t0, ends[played - 1] - t0, n,
                                               len(sched.waiting), n, self.kv.pool.usage(),
                                               played, *(() if self.host is None else
                                                         (0, 0, 0, 0.0))))
        sched.apply_decode_steps(played)
        if self.host is not None and (stall := self.host.pending_stall_s()):
            # write-back copies of blocks the run's decodes evicted: the engine waits
            self.timeseries.append(IterationSample(self.env.now, stall, n, len(sched.waiting),
                                                   0, self.kv.pool.usage(), 0, 0, 0, 0, 0.0))
            yield self.env.timeout(stall)

    def _host_sample(self, t0: float, compute_s: float, batched: int) -> float:
        """Record a scheduled step with a host tier: its prefix-lookup outcome (tokens of
        the requests admitted in it: GPU hits, host hits, misses) and its duration with
        the tier's loads and write-back stalls. Returns the duration."""
        assert self.host is not None
        kv, mark = self.kv, self._hit_mark
        q, g, h = kv.num_queries - mark[0], kv.num_hits - mark[1], kv.num_host_hits - mark[2]
        self._hit_mark = (kv.num_queries, kv.num_hits, kv.num_host_hits)
        load0 = self.host.load_s
        dt = self.host.step_time(compute_s)
        self.timeseries.append(IterationSample(
            t0, dt, len(self.scheduler.running), len(self.scheduler.waiting), batched,
            kv.pool.usage(), 1, g, h, q - g - h, self.host.load_s - load0))
        return dt

    def _finish(self, req: SimRequest) -> None:
        if req.call is None:
            self.num_prewarms += 1
            self._pending_prewarms -= 1
            if self._pending_prewarms == 0:
                for ev in self._prewarm_waiters:
                    ev.succeed()
                self._prewarm_waiters.clear()
            return
        self.num_finished += 1
        assert req.start_t is not None and req.first_token_t is not None
        assert req.finish_t is not None and req.cached_tokens is not None
        self.on_finish(CallResult(req.call.call_id, req.output_text, req.output_ids,
                                  req.submit_t, req.start_t, req.first_token_t,
                                  req.finish_t, req.cached_tokens))
