"""One worker's real vLLM engine, stepped by the session's driver.

The engine is vLLM's `LLMEngine` in-process (`VLLM_ENABLE_V1_MULTIPROCESSING=0`: ≈2 s
start on CPU, no engine-core process to orphan), driven with `add_request` / `step()`.
Per call: a `TokensPrompt` of the call's ids, greedy sampling with `ignore_eos` and
`max_tokens = call.output_tokens`, so output lengths are pinned.

Instance-level hooks (nothing global is patched) read what the engine does:

- `Scheduler.schedule` is wrapped to record each step's batch (prefill chunks as
  (new tokens, context before), decode contexts: the simulator's `BatchShape`), which
  calls were first scheduled (their `start_t`), and queue lengths and KV usage;
- `KVCacheManager.make_prefix_cache_stats` is wrapped to accumulate the prefix-cache
  queries and hits vLLM reports (prewarms included, as vLLM and the simulator count);
- `runtime.pins` pins prewarmed prefixes as `EngineSettings.prewarm_pin` says (soft by
  default, as the simulator) and soft-pins what calls `retain` until a later call
  `release`s it (see there).

Queue order (`EngineSettings.queue_order`): `fcfs` is vLLM's fcfs policy; `priority` is
vLLM's priority policy with `priority = call.priority` (the schedule rank, lower first);
`lspf` is vLLM's priority policy with `priority = -(longest prefix, in tokens, that this
engine has seen)`, computed when the call is submitted from an index of the full blocks of
every prompt submitted or prewarmed here (`PrefixIndex`): longest shared prefix first,
ties in arrival order. The index does not see evictions, so it ranks by sharing, not by
what is resident at that instant.
"""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from helium_lab.config import EngineSettings
from helium_lab.errors import ConfigError
from helium_lab.processor.calls import CallResult, LLMCall
from runtime import pins as pins_mod
from runtime.errors import EngineDiedError, EngineStartError, RuntimeBackendError
from runtime.model import ModelInfo
from runtime.prefix_index import PrefixIndex
from runtime.tokenizer import HFTokenizer

PREWARM_PRIORITY = -(1 << 62)
DEFAULT_KV_TOKENS = 65_536
STALL_STEPS = 1000
# ids of this process's open engines: vLLM's distributed state is process-wide (see close)
_OPEN: set[int] = set()


@dataclass(frozen=True)
class StepShape:
    """One engine step on the session clock: its batch and how long `step()` took."""

    t: float
    dt: float
    prefills: tuple[tuple[int, int], ...]
    decodes: tuple[int, ...]
    running: int
    waiting: int
    kv_usage: float

    @property
    def num_tokens(self) -> int:
        return sum(n for n, _ in self.prefills) + len(self.decodes)


@dataclass
class _Live:
    """A request in flight: a call (or a prewarm when `call` is None)."""

    call: LLMCall | None
    submit_t: float
    prompt_len: int
    start_t: float | None = None
    first_token_t: float | None = None
    output_ids: list[int] = field(default_factory=list)
    cached_tokens: int = 0
    prewarm: bool = False
    internal: str = ""  # vLLM's id (it suffixes ours); its scheduler knows only this one


def engine_args(info: ModelInfo, settings: EngineSettings, seed: int) -> dict[str, Any]:
    """`EngineArgs` keywords for one engine (CPU build: eager, explicit KV size)."""
    if settings.block_size % 32:
        raise ConfigError(f"engine.block_size={settings.block_size}: vLLM's CPU attention "
                          "needs a multiple of 32 (e.g. engine.block_size=32)")
    if keys := settings.simulated_only():
        raise ConfigError(f"engine.{keys[0]}: simulated only (backend=sim); for backend=vllm "
                          "leave it at its default (the host KV tier off, lru eviction)")
    max_len = settings.max_model_len or min(info.max_position_embeddings, 2048)
    tokens = settings.kv_capacity_tokens or DEFAULT_KV_TOKENS
    if tokens < max_len:
        raise ConfigError(f"engine.kv_capacity_tokens={tokens} cannot hold one sequence of "
                          f"max_model_len={max_len} tokens")
    policy = "fcfs" if settings.queue_order == "fcfs" else "priority"
    return dict(model=str(info.path), tokenizer=str(info.path), dtype=info.dtype,
                max_model_len=max_len, enable_prefix_caching=settings.enable_prefix_caching,
                enforce_eager=True, seed=seed, block_size=settings.block_size,
                kv_cache_memory_bytes=tokens * info.kv_bytes_per_token,
                max_num_seqs=settings.max_num_seqs,
                max_num_batched_tokens=max(settings.max_num_batched_tokens, 1),
                scheduling_policy=policy, disable_log_stats=False)


class VllmEngine:
    """One worker's engine. `submit`/`prewarm` queue requests; `step()` runs one engine
    step and returns the calls it finished. Times are seconds on `clock`."""

    def __init__(self, worker: int, info: ModelInfo, settings: EngineSettings, seed: int,
                 tokenizer: HFTokenizer, clock: Callable[[], float]) -> None:
        self.worker = worker
        self.settings = settings
        self.tok = tokenizer
        self.clock = clock
        args = engine_args(info, settings, seed)
        self.max_model_len = int(args["max_model_len"])
        try:
            import vllm
            from vllm.engine.arg_utils import EngineArgs
            from vllm.v1.engine.llm_engine import LLMEngine

            self.llm = LLMEngine.from_engine_args(EngineArgs(**args))
        except Exception as e:  # vLLM raises many kinds; all mean "did not start"
            raise EngineStartError(f"worker {worker}: vLLM engine for {str(info.path)!r} "
                                   f"failed to start: {type(e).__name__}: {e}") from e
        self.vllm = vllm
        from vllm.v1.engine.core_client import InprocClient

        client = self.llm.engine_core
        if not isinstance(client, InprocClient):  # runtime.session.VLLM_ENV forces in-process
            raise EngineStartError(f"worker {worker}: vLLM started its engine core in another "
                                   f"process ({type(client).__name__}); this backend steps it "
                                   "in process")
        from vllm.v1.core.sched.scheduler import Scheduler

        core = client.engine_core
        if not isinstance(core.scheduler, Scheduler):  # what the hooks and pins patch
            raise EngineStartError(f"worker {worker}: vLLM's scheduler is "
                                   f"{type(core.scheduler).__name__}, not its default "
                                   "Scheduler; this backend hooks that one")
        self.scheduler = core.scheduler
        self.kv = self.scheduler.kv_cache_manager
        self.num_gpu_blocks = int(core.vllm_config.cache_config.num_gpu_blocks or 0)
        self.kv_capacity_tokens = self.num_gpu_blocks * settings.block_size
        self.pins = (pins_mod.install(self.kv, settings.prewarm_pin, settings.block_size,
                                      self.num_gpu_blocks, vllm.__version__,
                                      core.vllm_config.cache_config.prefix_caching_hash_algo)
                     if settings.enable_prefix_caching else None)
        self.pins_installed, self.vllm_version = self.pins is not None, vllm.__version__
        self.index = PrefixIndex(settings.block_size)
        self.live: dict[str, _Live] = {}
        self.steps: list[StepShape] = []
        self.queries = self.hits = 0
        self.num_finished = self.num_prewarms = self.num_prewarms_skipped = 0
        self._next = 0
        self._shape: tuple[Any, ...] | None = None
        self._idle_steps = 0
        self._step_t0 = 0.0
        self._internal: dict[str, str] = {}
        self._hook()
        _OPEN.add(id(self))
        self._warm_up()

    def _warm_up(self) -> None:
        """Run a few throwaway requests (first steps of a new engine are slow: kernel
        setup), then forget them: prefix cache reset, counters and steps cleared."""
        for k in range(2):
            ids = tuple(16 + (7 * i + 13 * k) % 1000 for i in range(48 + 40 * k))
            self.add_raw(ids, 4)
        while self.has_work:
            self.step()
        self.llm.reset_prefix_cache()
        self.steps.clear()
        self.queries = self.hits = 0
        self.index = PrefixIndex(self.settings.block_size)

    # -- hooks ---------------------------------------------------------------------------
    def _hook(self) -> None:
        sched, kv = self.scheduler, self.kv
        schedule, make_stats = sched.schedule, kv.make_prefix_cache_stats

        def hooked_schedule(*a: Any, **k: Any) -> Any:
            out = schedule(*a, **k)
            self._record_schedule(out)
            return out

        def hooked_stats() -> Any:
            stats = make_stats()
            if stats is not None:
                self.queries += stats.queries + stats.preempted_queries
                self.hits += stats.hits + stats.preempted_hits
            return stats

        sched.schedule = hooked_schedule  # type: ignore[method-assign]  # hooks, by design
        kv.make_prefix_cache_stats = hooked_stats  # type: ignore[method-assign]

    def _record_schedule(self, out: Any) -> None:
        prefills: list[tuple[int, int]] = []
        decodes: list[int] = []
        for rid, n in out.num_scheduled_tokens.items():
            req = self.scheduler.requests[rid]
            ctx = req.num_computed_tokens - n
            if ctx >= req.num_prompt_tokens:
                decodes.append(ctx)
            else:
                prefills.append((n, ctx))
            live = self.live.get(self._internal.get(rid, ""))
            if live is not None and live.start_t is None:
                live.start_t = self._step_t0
        self._shape = (tuple(prefills), tuple(decodes), len(self.scheduler.running),
                       len(self.scheduler.waiting), float(self.kv.usage))

    # -- requests ------------------------------------------------------------------------
    def _add(self, ids: tuple[int, ...], max_tokens: int, priority: int, live: _Live) -> str:
        from vllm import SamplingParams, TokensPrompt
        from vllm.sampling_params import RequestOutputKind

        rid = f"w{self.worker}-{self._next}"
        self._next += 1
        params = SamplingParams(temperature=0.0, ignore_eos=True, max_tokens=max_tokens,
                                detokenize=False, output_kind=RequestOutputKind.DELTA)
        if self.settings.queue_order == "lspf":
            priority = min(priority, -self.index.longest(ids))
        self.index.add(ids)
        try:
            internal = self.llm.add_request(rid, TokensPrompt(prompt_token_ids=list(ids)),
                                            params, priority=priority)
        except Exception as e:
            what = "a request" if live.call is None else (
                f"call {live.call.call_id} (op {live.call.op!r}, query {live.call.query})")
            raise RuntimeBackendError(f"worker {self.worker}: vLLM rejected {what} with "
                                      f"{len(ids)} prompt tokens + {max_tokens} output "
                                      f"(max_model_len {self.max_model_len}): {e}") from e
        self.live[rid] = live
        live.internal = internal
        self._internal[internal] = rid
        return internal

    def submit(self, call: LLMCall, submit_t: float) -> None:
        if call.output_tokens < 1:
            raise RuntimeBackendError(f"call {call.call_id} (op {call.op!r}): output_tokens "
                                      f"must be >= 1, got {call.output_tokens}")
        prio = call.priority if self.settings.queue_order == "priority" else 0
        internal = self._add(call.prompt_ids, call.output_tokens, prio,
                             _Live(call, submit_t, len(call.prompt_ids)))
        if self.pins is not None and (call.retain or call.release):
            self.pins.submitted(self.scheduler.requests[internal], call.retain, call.release)

    def update_step_graph(self, steps: Mapping[str, int]) -> None:
        """Ignored: stock vLLM has no use for KVFlow's step graph (no host KV tier)."""

    def prewarm(self, prompt_ids: tuple[int, ...]) -> None:
        """Pin `prompt_ids`' full blocks as `engine.prewarm_pin` says and prefill them
        (max_tokens=1), unless hard-pinned (`hard`) or all cached (`soft`, `none`)."""
        full = len(prompt_ids) // self.settings.block_size * self.settings.block_size
        if not self.settings.enable_prefix_caching or full == 0:
            return
        if self.pins is not None and not self.pins.before_prewarm(prompt_ids):
            self.num_prewarms_skipped += 1
            return
        rid = self._add(prompt_ids, 1, PREWARM_PRIORITY,
                        _Live(None, self.clock(), len(prompt_ids), prewarm=True))
        if self.pins is not None:
            self.pins.prewarm_added(self.scheduler.requests[rid], prompt_ids)

    def add_raw(self, ids: tuple[int, ...], max_tokens: int) -> None:
        """A request outside any run (calibration): it runs and is counted, no result."""
        self._add(ids, max_tokens, 0, _Live(None, self.clock(), len(ids)))

    @property
    def has_work(self) -> bool:
        return bool(self.live)

    @property
    def prewarms_pending(self) -> bool:
        return any(r.prewarm for r in self.live.values())

    # -- stepping ------------------------------------------------------------------------
    def start_step(self) -> None:  # in process, `step()` runs the whole step
        pass

    def step(self) -> list[CallResult]:
        """One engine step; returns the calls that finished in it."""
        self._shape = None
        self._step_t0 = t0 = self.clock()
        try:
            outputs = self.llm.step()
        except Exception as e:
            raise EngineDiedError(f"worker {self.worker}: vLLM engine failed during a step: "
                                  f"{type(e).__name__}: {e}") from e
        t1 = self.clock()
        if self._shape is not None:
            pre, dec, running, waiting, usage = self._shape
            if pre or dec:
                self.steps.append(StepShape(t0, t1 - t0, pre, dec, running, waiting, usage))
                self._idle_steps = 0
            else:
                self._idle_steps += 1
        if self._idle_steps > STALL_STEPS:
            raise EngineDiedError(f"worker {self.worker}: engine stalled: {len(self.live)} "
                                  "requests in flight but nothing schedulable (KV cache too "
                                  "small for them, or held by pins?)")
        done: list[CallResult] = []
        for out in outputs:
            live = self.live.get(out.request_id)
            if live is None:
                continue
            completions = out.outputs
            new = completions[0].token_ids if isinstance(completions, list) and completions else []
            if new and live.first_token_t is None:
                live.first_token_t = t1
            live.output_ids.extend(new)
            if out.num_cached_tokens is not None:
                live.cached_tokens = int(out.num_cached_tokens)
            if out.finished:
                del self.live[out.request_id]
                self._internal.pop(live.internal, None)
                result = self._finish(live, t1)
                if result is not None:
                    done.append(result)
        return done

    def _finish(self, live: _Live, t: float) -> CallResult | None:
        if live.call is None:
            self.num_prewarms += live.prewarm
            return None
        self.num_finished += 1
        call = live.call
        ids = tuple(live.output_ids)
        if len(ids) != call.output_tokens:
            raise EngineDiedError(f"worker {self.worker}: call {call.call_id} (op {call.op!r})"
                                  f" generated {len(ids)} tokens, not {call.output_tokens}")
        start = live.start_t if live.start_t is not None else live.submit_t
        first = live.first_token_t if live.first_token_t is not None else t
        return CallResult(call.call_id, self.tok.decode(ids), ids, live.submit_t, start,
                          first, t, live.cached_tokens)

    def abort_all(self) -> None:
        if self.live:
            try:
                self.llm.abort_request(list(self.live))
                if self.pins is not None:
                    self.pins.forget([r.internal for r in self.live.values()])
            finally:
                self.live.clear()
                self._internal.clear()

    # -- reporting -----------------------------------------------------------------------
    def stats(self) -> dict[str, float]:
        steps = self.steps
        n = max(len(steps), 1)
        return {
            "prefix_cache_queries": float(self.queries),
            "prefix_cache_hits": float(self.hits),
            "prefix_cache_hit_rate": self.hits / self.queries if self.queries else 0.0,
            "kv_usage": float(self.kv.usage),
            "kv_usage_mean": sum(s.kv_usage for s in steps) / n,
            "kv_capacity_tokens": float(self.kv_capacity_tokens),
            **(self.pins.stats() if self.pins is not None else pins_mod.NO_PINS),
            "num_steps": float(len(steps)),
            "batch_requests_mean": sum(s.running for s in steps) / n,
            "batch_tokens_mean": sum(s.num_tokens for s in steps) / n,
            "busy_s": sum(s.dt for s in steps),
            "num_finished": float(self.num_finished),
            "num_prewarms": float(self.num_prewarms),
            "num_prewarms_skipped": float(self.num_prewarms_skipped),
        }

    def close(self) -> None:
        """Abort what is in flight, release pins, shut the engine down.

        vLLM's in-process shutdown also tears down the process-wide distributed state
        (`cleanup_dist_env_and_memory`) that every other in-process engine still uses, so
        only the last open engine of the process runs it; the others just drop their
        references (their finalizer, which would run it, is detached)."""
        _OPEN.discard(id(self))
        try:
            self.abort_all()
            if self.pins is not None:
                self.pins.release_all()
        except Exception:  # a broken engine: shutting it down is all that is left
            pass
        client = self.llm.engine_core
        if _OPEN:
            finalizer = getattr(client, "_finalizer", None)
            if finalizer is not None:
                finalizer.detach()
            gc.unfreeze()  # vLLM froze startup objects; let them be collected
            return
        with contextlib.suppress(Exception):  # a broken engine: nothing more to do
            client.shutdown()


def now_clock(origin: float) -> Callable[[], float]:
    """Seconds since `origin` on the monotonic performance counter."""
    return lambda: time.perf_counter() - origin
