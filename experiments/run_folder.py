"""The run folder's life cycle: what a folder says is always true of one run.

`helium_lab.run` drives it (docs/reliability.md, "The run folder"):

- `RunFolder.start` removes the files an earlier run left in the folder (`RUN_FILES` and
  their temporary files; nothing else) and writes `summary.json` with `status: running`;
  it refuses (ConfigError, exit 2) a folder in which a run on this machine is still alive.
- A task reports how far it got with `note(stage=..., key=value or callable)` (a no-op
  outside a run); callables are read when the run ends, e.g. the number of calls finished.
- `RunFolder.finish` writes the task's summary with `status: ok`; `RunFolder.fail` writes
  `status: failed` with the error's type and message and the progress noted so far.
- `handle_signals` turns SIGTERM and SIGHUP into `Terminated` (a SystemExit) and SIGINT
  into KeyboardInterrupt while a run is in progress, so that `fail` runs on them too;
  after that, `die_by` ends the process by the same signal.

Every file is written atomically (`helium_lab.io`), so summary.json is always a complete
JSON object.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from helium_lab.errors import ConfigError
from helium_lab.io import atomic_write_json

SUMMARY = "summary.json"
# Every file a task of `experiments.TASKS` (or run.py) writes into its run folder. A new
# task that writes another file adds it here, so that a re-run removes it first.
RUN_FILES = ("config.yaml", SUMMARY, "calls.jsonl", "outputs.jsonl", "timeseries.csv",
             "validation.json", "cost_table.json", "engines.log")

_active: RunFolder | None = None


class Terminated(SystemExit):
    """Raised in the main thread on SIGTERM or SIGHUP while a run is in progress."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)  # args: (signum,), so that type(e)(*e.args) (SimPy) copies it
        self.signum = signum
        self.signame = signal.Signals(signum).name
        self.code = 128 + signum  # the exit status, as a shell reports death by the signal

    def __str__(self) -> str:
        return f"terminated by {self.signame}"


def die_by(signum: int) -> None:
    """End the process by signal `signum`, as it would have without our handler (after the
    summary is written): its parent sees it killed by that signal, and a worker process of
    a launcher (joblib) does not go on to its next job."""
    import sys

    for stream in (sys.stdout, sys.stderr):
        with suppress(Exception):
            stream.flush()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def note(**progress: Any) -> None:
    """Record how far the current run got (shown in summary.json while it runs and when
    it fails). A callable value is called when the summary is written."""
    if _active is not None:
        _active.note(**progress)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def _read_summary(path: Path) -> dict[str, Any] | None:
    import json

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


class RunFolder:
    def __init__(self, path: Path, task: str | None = None) -> None:
        self.path = Path(path)
        self.task = task
        self.progress: dict[str, Any] = {}
        self.removed: list[str] = []
        self._t0 = time.perf_counter()
        self._started_at = ""

    # -- life cycle ------------------------------------------------------------------------
    def start(self) -> None:
        """Claim the folder: refuse a live run's folder, remove an earlier run's files,
        write `status: running`."""
        global _active
        self.path.mkdir(parents=True, exist_ok=True)
        old = _read_summary(self.path / SUMMARY)
        if (old is not None and old.get("status") == "running"
                and old.get("host") == socket.gethostname()
                and isinstance(old.get("pid"), int) and old["pid"] != os.getpid()
                and _pid_alive(old["pid"])):
            raise ConfigError(
                f"hydra.run.dir={str(self.path)!r} holds a run that is still in progress "
                f"(pid {old['pid']}); choose another folder")
        self.removed = self.clean()
        if self.removed:
            print(f"run folder {self.path} held an earlier run; removed its "
                  f"{', '.join(self.removed)}")
        self._started_at = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        self._t0 = time.perf_counter()
        self._write({"status": "running"})
        _active = self

    def clean(self) -> list[str]:
        """Remove `RUN_FILES` (and temporary files of them) from the folder; returns the
        names removed. Other files (Hydra's `.hydra/` and log, a paper_figs stamp, files
        of the user) are left alone."""
        removed = []
        for name in RUN_FILES:
            p = self.path / name
            if p.is_file() or p.is_symlink():
                p.unlink()
                removed.append(name)
            for tmp in self.path.glob(f".{name}.*.tmp"):
                tmp.unlink(missing_ok=True)
        return removed

    def note(self, **progress: Any) -> None:
        self.progress.update(progress)
        if _active is self:
            with suppress(OSError):  # progress is informative; the run goes on
                self._write({"status": "running"})

    def finish(self, summary: dict[str, Any]) -> dict[str, Any]:
        out = dict(summary)
        out["status"] = "ok"
        out.setdefault("task", self.task)
        self._close()
        self._write(out, base=False)
        return out

    def fail(self, error: BaseException) -> dict[str, Any]:
        """Write `status: failed` with the error and the progress so far. Never raises
        (the original error matters more than a failure to record it)."""
        out = {"status": "failed", "error_type": type(error).__name__,
               "error": _describe(error), "elapsed_s": round(time.perf_counter() - self._t0, 3)}
        self._close()
        with suppress(Exception):  # a full disk must not mask the run's own error
            self._write(out)
        return out

    # -- internals -----------------------------------------------------------------------
    def _close(self) -> None:
        global _active
        if _active is self:
            _active = None

    def _progress(self) -> dict[str, Any]:
        out = {}
        for k, v in self.progress.items():
            if callable(v):
                try:
                    v = v()
                except Exception as e:
                    v = f"unavailable ({type(e).__name__})"
            out[k] = v
        return out

    def _write(self, fields: dict[str, Any], base: bool = True) -> None:
        doc: dict[str, Any] = {}
        if base:
            doc.update({"task": self.task, "progress": self._progress()})
        doc.update(fields)
        doc.update({"started_at": self._started_at, "host": socket.gethostname(),
                    "pid": os.getpid()})
        doc["files"] = sorted(n for n in RUN_FILES if (self.path / n).is_file()
                              and n != SUMMARY)
        atomic_write_json(self.path / SUMMARY, doc)


def _describe(error: BaseException) -> str:
    if isinstance(error, KeyboardInterrupt):
        return "interrupted (SIGINT / Ctrl-C)"
    if isinstance(error, SystemExit) and not isinstance(error, Terminated):
        return f"exited with status {error.code}"
    return str(error) or type(error).__name__


@contextmanager
def handle_signals() -> Iterator[None]:
    """While inside: SIGTERM/SIGHUP raise `Terminated`, SIGINT raises KeyboardInterrupt, in
    the main thread (elsewhere nothing changes). A signal the process ignores (SIG_IGN, as
    `nohup` sets SIGHUP) stays ignored. The previous handlers come back on exit."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum: int, frame: Any) -> None:
        raise Terminated(signum)

    wanted: dict[int, Callable[[int, Any], Any]] = {signal.SIGINT: signal.default_int_handler,
                                                    signal.SIGTERM: terminate}
    if hasattr(signal, "SIGHUP"):
        wanted[signal.SIGHUP] = terminate
    previous: dict[int, Any] = {}
    for signum, handler in wanted.items():
        old = signal.getsignal(signum)
        if old == signal.SIG_IGN:
            continue
        previous[signum] = signal.signal(signum, handler)
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old if old is not None else signal.SIG_DFL)
