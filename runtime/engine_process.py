"""A worker's vLLM engine in a child process of its own, so that engines step at once.

In-process engines cannot overlap in one Python process: vLLM keeps the running forward
pass's context (`vllm.forward_context._forward_context`) and the current config as process
globals, so two engines stepped from two threads would read each other's attention
metadata. With one engine per process the session starts a step on every busy engine and
then collects them, and the steps run in parallel where the hardware allows (one GPU per
worker; on a CPU machine, a core per engine).

`RemoteEngine` is the session's side: the `VllmEngine` calls the driver uses, over a pipe.
Protocol (one reply per request, in order):

- `submit` and `prewarm` are queued here and travel with the next step request, so a step
  in flight is never interleaved with other traffic; the child applies them in order,
  then steps once if it has work;
- every reply carries the child's `has_work`, `prewarms_pending` and the step records
  (`StepShape`) added since the last reply, mirrored here as `steps`;
- an exception in the child comes back as the same `HeliumError` class (`_ERRORS`) with its
  message, naming the worker; any other, or a child that died, is an `EngineDiedError`
  (`EngineStartError` while starting).

The child ignores SIGINT (Ctrl-C reaches the whole process group; the session aborts and
closes its engines), exits when its pipe closes (the session's process died), and with a
log path sends its stdout, stderr and vLLM's logger there. Times are on the session's
clock: `time.perf_counter` is system-wide monotonic, and the child is given the origin.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
from collections.abc import Mapping
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from helium_lab.config import EngineSettings
from helium_lab.errors import ConfigError, HeliumError
from helium_lab.processor.calls import CallResult, LLMCall
from runtime import errors
from runtime.engine import StepShape
from runtime.model import ModelInfo

START_TIMEOUT_S = 600.0  # first vLLM import and engine start; minutes on a busy CPU host
CLOSE_TIMEOUT_S = 60.0
# a step not answered in this long is a hung engine (a watchdog, not a model parameter: a
# step is at most max_num_batched_tokens tokens; the tiny model's take < 1 s on this host)
STEP_TIMEOUT_S = 1800.0

Op = tuple[str, tuple[Any, ...]]  # ("submit", (call, t)) | ("prewarm", (ids,))
# errors a child re-raises here by name; any other exception is an EngineDiedError
_ERRORS: dict[str, type[HeliumError]] = {cls.__name__: cls for cls in (
    ConfigError, errors.RuntimeBackendError, errors.ModelPathError, errors.EngineStartError,
    errors.EngineDiedError)}


class RemoteEngine:
    """The session's handle on one child's engine (see the module docstring). The
    constructor starts the child; `wait_started()` waits for its engine."""

    def __init__(self, worker: int, info: ModelInfo, settings: EngineSettings, seed: int,
                 origin: float, *, log_path: Path | None = None,
                 device: str | None = None) -> None:
        self.worker = worker
        self.settings = settings
        ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: no vLLM state
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, name=f"vllm-engine-{worker}", daemon=True,
                                 args=(child, worker, info, settings, seed, origin,
                                       log_path, device))
        self._proc.start()
        child.close()
        self._outbox: list[Op] = []
        self._pending = 1  # replies owed: the start-up report, then one per request
        self._has_work = self._prewarms = False
        self.steps: list[StepShape] = []
        self.kv_capacity_tokens = self.max_model_len = self.num_gpu_blocks = 0
        self.pins_installed, self.vllm_version = False, ""
        self._started = False
        self._hung = False  # a reply was given up on: close() ends the child at once

    def wait_started(self) -> None:
        """Block until the child's engine is up (start several children, then wait)."""
        ready = self._reply(START_TIMEOUT_S, starting=True)
        self.kv_capacity_tokens = int(ready["kv_capacity_tokens"])
        self.max_model_len = int(ready["max_model_len"])
        self.num_gpu_blocks = int(ready["num_gpu_blocks"])
        self.pins_installed = bool(ready["pins_installed"])
        self.vllm_version = str(ready["vllm_version"])
        self._started = True

    # -- the VllmEngine calls the session makes --------------------------------------------
    def submit(self, call: LLMCall, submit_t: float) -> None:
        self._outbox.append(("submit", (call, submit_t)))

    def prewarm(self, prompt_ids: tuple[int, ...]) -> None:
        self._outbox.append(("prewarm", (prompt_ids,)))

    def update_step_graph(self, steps: Mapping[str, int]) -> None:
        """Ignored, as by `VllmEngine`: stock vLLM has no host tier to drive."""

    @property
    def has_work(self) -> bool:
        return self._has_work or bool(self._outbox)

    @property
    def prewarms_pending(self) -> bool:
        return self._prewarms or any(op == "prewarm" for op, _ in self._outbox)

    def start_step(self) -> None:
        """Send what is queued and one step request; `step()` collects the step."""
        if not self._pending:
            self._send("step", self._outbox)
            self._outbox = []

    def step(self) -> list[CallResult]:
        """The calls finished by the step `start_step` began (started now if it wasn't)."""
        self.start_step()
        done: list[CallResult] = self._reply(STEP_TIMEOUT_S)
        return done

    def abort_all(self) -> None:
        self._outbox = []
        if self._hung:  # it answers nothing; close() kills it
            return
        self._drain()
        self._send("abort", [])
        self._reply(CLOSE_TIMEOUT_S)

    def stats(self) -> dict[str, float]:
        if self._hung:
            raise self._died("gave up on it earlier (it stopped answering)")
        self._drain()
        self._send("stats", [])
        stats: dict[str, float] = self._reply(CLOSE_TIMEOUT_S)
        return stats

    def close(self) -> None:
        """Shut the child's engine down and end the child; kill it if it does not go."""
        try:
            if not self._started or self._hung:  # nothing to shut down, or nobody to ask
                self._proc.kill()
            elif self._proc.is_alive():
                self._drain()
                self._send("close", [])
                self._reply(CLOSE_TIMEOUT_S)
        except errors.RuntimeBackendError:
            pass  # a broken child: ending it is all that is left
        finally:
            self._conn.close()
            self._proc.join(CLOSE_TIMEOUT_S)
            if self._proc.is_alive():
                self._proc.kill()
                self._proc.join()

    # -- the pipe ------------------------------------------------------------------------
    def _drain(self) -> None:
        """Read a reply still owed (a step in flight when an error or Ctrl-C came), dropping
        it, so that the next request's reply is its own."""
        while self._pending:
            with contextlib.suppress(HeliumError):
                self._reply(CLOSE_TIMEOUT_S)

    def _send(self, cmd: str, arg: Any) -> None:
        try:
            self._conn.send((cmd, arg))
        except (OSError, ValueError) as e:
            raise self._died(f"could not send {cmd!r}: {e}") from None
        self._pending += 1

    def _reply(self, timeout_s: float | None, *, starting: bool = False) -> Any:
        try:
            if timeout_s is not None and not self._conn.poll(timeout_s):
                self._pending, self._hung = 0, True  # the session fails; close() kills it
                raise self._died(f"no answer within {timeout_s:g} s")
            kind, value, state = self._conn.recv()
            self._pending -= 1
        except (EOFError, OSError) as e:
            self._pending = 0  # nothing more will come
            if starting:
                raise errors.EngineStartError(
                    f"worker {self.worker}: the engine process exited while starting "
                    f"(exit code {self._exitcode()}; see the engines' log)") from e
            raise self._died(f"the engine process exited (exit code {self._exitcode()})"
                             ) from None
        if state is not None:
            self._has_work, self._prewarms, new_steps = state
            self.steps.extend(new_steps)
        if kind == "error":
            name, message = value
            raise _ERRORS.get(name, errors.EngineDiedError)(message)
        return value

    def _exitcode(self) -> int | None:
        self._proc.join(1.0)
        return self._proc.exitcode

    def _died(self, why: str) -> errors.EngineDiedError:
        return errors.EngineDiedError(f"worker {self.worker}: vLLM engine process: {why}")


def _serve(conn: Connection, worker: int, info: ModelInfo, settings: EngineSettings,
           seed: int, origin: float, log_path: Path | None, device: str | None) -> None:
    """The child: start the engine, then answer requests until `close` or a closed pipe."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if device is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = device
    if log_path is not None:
        with open(log_path, "ab") as log:
            os.dup2(log.fileno(), 1)
            os.dup2(log.fileno(), 2)
    from runtime.engine import VllmEngine, now_clock
    from runtime.engine_log import EngineLog
    from runtime.session import prepare_vllm_env
    from runtime.tokenizer import HFTokenizer

    EngineLog(log_path).open()
    engine: VllmEngine | None = None
    sent = 0

    def state() -> tuple[bool, bool, list[StepShape]] | None:
        nonlocal sent
        if engine is None:
            return None
        new = engine.steps[sent:]
        sent = len(engine.steps)
        return engine.has_work, engine.prewarms_pending, new

    def answer(kind: str, value: Any) -> None:
        conn.send((kind, value, state()))

    try:
        prepare_vllm_env()
        tok = HFTokenizer.from_dir(info.path)
        engine = VllmEngine(worker, info, settings, seed, tok, now_clock(origin))
        answer("ok", {"kv_capacity_tokens": engine.kv_capacity_tokens,
                      "max_model_len": engine.max_model_len,
                      "num_gpu_blocks": engine.num_gpu_blocks,
                      "pins_installed": engine.pins_installed,
                      "vllm_version": engine.vllm_version})
    except Exception as e:
        answer("error", (_name(e, "EngineStartError"), _message(worker, e)))
        return
    while True:
        try:
            cmd, arg = conn.recv()
        except (EOFError, OSError):  # the session's process is gone
            engine.close()
            return
        try:
            if cmd == "step":
                for op, args in arg:
                    getattr(engine, op)(*args)
                answer("ok", engine.step() if engine.has_work else [])
            elif cmd == "abort":
                engine.abort_all()
                answer("ok", None)
            elif cmd == "stats":
                answer("ok", engine.stats())
            elif cmd == "close":
                engine.close()
                answer("ok", None)
                return
            else:
                answer("error", ("RuntimeBackendError", f"unknown request {cmd!r}"))
        except Exception as e:
            answer("error", (_name(e, "EngineDiedError"), _message(worker, e)))


def _name(e: Exception, otherwise: str) -> str:
    return type(e).__name__ if type(e).__name__ in _ERRORS else otherwise


def _message(worker: int, e: Exception) -> str:
    text = str(e)
    return text if text.startswith(f"worker {worker}") else (
        f"worker {worker}: {type(e).__name__}: {text}")
