"""The backend seam above the engines: what `sim/` and `runtime/` both provide.

A backend is a *session* of engines (one per worker) whose caches persist across runs, so
a warm-up batch and a measured batch can share them (Trading's two days):

    with open_session(...) as session:      # backend-specific factory
        tok = session.tokenizer             # plan with the tokens the engines will see
        warm = session.run(proc_day1)       # BackendResult
        measured = session.run(proc_day2)

`run(proc)` drives one `QueryProcessor` to completion on the backend's clock (SimPy time
in `sim/`, the wall clock in `runtime/`): prewarm the processor's static prefixes, call
`proc.start()`, feed every completion back through `proc.on_finished`, and stop when
`proc.done`. It returns the calls' records and each engine's time series.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple, Protocol

if TYPE_CHECKING:  # the processor package imports this module (EchoSession)
    from helium_lab.processor.calls import CallRecord
    from helium_lab.processor.query_processor import QueryProcessor
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


class Session(Protocol):
    """Engines that outlive one run (see the module docstring)."""

    @property
    def tokenizer(self) -> Tokenizer: ...

    def run(self, proc: QueryProcessor, *, progress: bool = False) -> BackendResult: ...

    def close(self) -> None: ...
