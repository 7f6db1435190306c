"""The backend seam above the engines: what `sim/` and `runtime/` both provide.

A backend is a *session* of engines (one per worker) whose caches persist across runs, so
a warm-up batch and a measured batch can share them (Trading's two days):

    with open_session(...) as session:      # backend-specific factory
        tok = session.tokenizer             # plan with the tokens the engines will see
        warm = session.run(proc_day1)       # BackendResult
        measured = session.run(proc_day2)

`run(proc)` drives one `Processor` to completion on the backend's clock (SimPy time
in `sim/`, the wall clock in `runtime/`): prewarm the processor's static prefixes, call
`proc.start()`, feed every completion back through `proc.on_finished`, and stop when
`proc.done`. It returns the calls' records and each engine's time series.

The three protocols of the seam live here: `Processor` (what a backend drives),
`Engine` (one worker's engine) and `Session` (the backend). `RunLedger` is the bookkeeping
every backend's run shares (calls submitted, records, checks, the result); a backend adds
only its clock and its way of waiting, as SimPy's `RealtimeEnvironment` overrides only
`step()`. Ownership: the processor owns the plan's state and decides *which* calls go and
to which worker; the session owns time (every timestamp in a `CallResult` is on its clock)
and decides *when* a call reaches its engine; an engine owns its queue and KV cache.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, NamedTuple, Protocol, TypeVar

from tqdm import tqdm

from helium_lab.errors import HeliumError

if TYPE_CHECKING:  # the processor package imports this module (EchoSession)
    from helium_lab.processor.calls import CallRecord, CallResult, LLMCall
    from helium_lab.tokenizer import Tokenizer


class EngineSample(NamedTuple):
    """`steps` consecutive engine steps of the same batch (1 for most; the simulator
    merges runs of identical decode steps): start time, total duration, requests running
    and waiting, tokens batched per step, KV usage (0..1) at the start.

    With a host KV tier (else None): prompt tokens of the requests admitted in the step
    found on the GPU, found on the host, and missed, and the host->GPU transfer time
    (overlapped with the step's compute). A write-back stall outside a step is a sample
    of 0 steps."""

    t: float
    dt: float
    running: int
    waiting: int
    batched_tokens: int
    kv_usage: float
    steps: int = 1
    gpu_hit_tokens: int | None = None
    host_hit_tokens: int | None = None
    miss_tokens: int | None = None
    host_load_s: float | None = None


@dataclass(frozen=True)
class BackendResult:
    """One processor run. Times are seconds on the session's clock: the run began at
    `begin_t`, prewarm ended and `proc.start()` ran at `start_t`, and `makespan` = last
    completion - `begin_t` (prewarm included). `records` (completion order) and
    `timeseries` (per worker) cover this run; `stats` are each engine's cumulative
    counters at its end (names as in `sim.SimEngine.stats`, a subset is fine)."""

    records: tuple[CallRecord, ...]
    timeseries: dict[int, tuple[EngineSample, ...]]
    stats: dict[int, dict[str, float]]
    begin_t: float
    start_t: float
    makespan: float


class Processor(Protocol):
    """What a backend drives: `helium_lab.processor.QueryProcessor`, or a proxy of one.

    `prewarm_prompts()` (before `start`, may be empty): per worker, static prefixes to
    prefill first. `start()` (once): the first calls. `on_finished(result)`: record a
    completion, return the calls it unlocks (possibly none). `done`: every call finished.
    The processor never reads a clock; it learns time only from `CallResult`s."""

    def prewarm_prompts(self) -> dict[int, list[tuple[int, ...]]]: ...

    def step_graph_updates(self) -> list[dict[str, int]]:
        """Agent step distances that changed since the last call, oldest first (KVFlow's
        step graph, `helium_lab.processor.step_graph`; empty unless the system keeps
        one). Drained: each update is returned once."""
        ...

    def start(self) -> list[LLMCall]: ...

    def on_finished(self, result: CallResult) -> list[LLMCall]: ...

    @property
    def done(self) -> bool: ...


class Engine(Protocol):
    """One worker's LLM engine. Completions come back through its session's driver."""

    def submit(self, call: LLMCall, submit_t: float) -> None:
        """Queue `call`, emitted by the processor at `submit_t` (session clock; it arrives
        now, possibly later than emitted: the client's transit)."""

    def prewarm(self, prompt_ids: tuple[int, ...]) -> None:
        """Prefill `prompt_ids` into the prefix cache (proactive KV caching), no output."""

    def update_step_graph(self, steps: Mapping[str, int]) -> None:
        """A hint: each agent's steps to execution (KVFlow's `/update`); engines that
        don't use it ignore it."""

    def stats(self) -> dict[str, float]:
        """Cumulative counters: prefix-cache queries/hits, preemptions, ... (names as in
        `sim.SimEngine.stats`; a subset is fine)."""
        ...


class Session(Protocol):
    """Engines that outlive one run (see the module docstring)."""

    @property
    def tokenizer(self) -> Tokenizer: ...

    def run(self, proc: Processor, *, progress: bool = False) -> BackendResult: ...

    def close(self) -> None: ...


E = TypeVar("E", bound=Engine)


class RunLedger(Generic[E]):
    """The bookkeeping of one processor run, the same in every backend: which calls were
    submitted (each id once, each to an existing worker), their records in completion
    order, the progress bar, and the result. Errors are raised as `error` (the backend's
    own `HeliumError` subclass), naming the call, op and worker."""

    def __init__(self, proc: Processor, engines: Sequence[E], error: type[HeliumError], *,
                 progress: bool = False, desc: str = "run") -> None:
        self.proc = proc
        self.engines = engines
        self.error = error
        self.calls: dict[int, LLMCall] = {}
        self.records: list[CallRecord] = []
        self.bar = tqdm(desc=desc, unit="call", disable=not progress)

    def engine(self, worker: int, what: str) -> E:
        """The engine of `worker`; `what` names the submission in the error."""
        if not 0 <= worker < len(self.engines):
            raise self.error(f"{what} targets worker {worker}, but only "
                             f"{len(self.engines)} engines are configured")
        return self.engines[worker]

    def submitted(self, calls: list[LLMCall]) -> list[tuple[E, LLMCall]]:
        """Register calls the processor emitted; each with the engine it goes to. Step
        graph updates the processor made meanwhile go to every engine first (KVFlow's
        client sends `/update` to all workers before the call it precedes)."""
        for steps in self.proc.step_graph_updates():
            for eng in self.engines:
                eng.update_step_graph(steps)
        out = []
        for call in calls:
            engine = self.engine(call.worker, f"call {call.call_id}")
            if call.call_id in self.calls:
                raise self.error(f"call id {call.call_id} (op {call.op!r}) submitted twice")
            self.calls[call.call_id] = call
            out.append((engine, call))
        return out

    def finished(self, result: CallResult) -> None:
        """Record a completion (before the processor sees it)."""
        from helium_lab.processor.calls import CallRecord

        self.records.append(CallRecord.of(self.calls[result.call_id], result))
        self.bar.update()

    def close(self) -> None:
        self.bar.close()

    def result(self, timeseries: dict[int, tuple[EngineSample, ...]], *, begin_t: float,
               start_t: float, last_t: float | None = None) -> BackendResult:
        """The run's result; raises if the processor is not done. `last_t`: the latest
        moment the run was busy, if later than the last completion (the client still
        handling one)."""
        if not self.proc.done:
            raise self.error(f"engines ran out of work but the processor is not done "
                             f"({len(self.calls)} calls submitted, {len(self.records)} "
                             "finished)")
        last = max(max((r.finish_t for r in self.records), default=start_t),
                   start_t if last_t is None else last_t)
        return BackendResult(
            records=tuple(self.records), timeseries=timeseries,
            stats={w: e.stats() for w, e in enumerate(self.engines)},
            begin_t=begin_t, start_t=start_t, makespan=last - begin_t)
