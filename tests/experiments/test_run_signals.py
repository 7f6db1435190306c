"""Signals end a run as `failed` with how far it got (docs/reliability.md, "The run folder"),
and an interrupted `python -m paper_figs` takes its whole sweep down with it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.experiments.test_run_folder import DATA, summary


# --- signals ----------------------------------------------------------------------------------
@pytest.mark.parametrize(("sig", "code", "error_type"), [
    (signal.SIGTERM, -signal.SIGTERM, "Terminated"),  # recorded, then killed by it
    (signal.SIGINT, 130, "KeyboardInterrupt"),
])
def test_a_signal_ends_the_run_as_failed(sig: int, code: int, error_type: str,
                                         tmp_path: Path) -> None:
    # sim backend, a batch large enough to be caught while it runs
    proc = subprocess.Popen([sys.executable, "-m", "helium_lab.run", "+experiment=debate",
                             "batch_size=2000", "progress=false", f"hydra.run.dir={tmp_path}"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            # a test runner started in the background (`cmd &`) ignores
                            # SIGINT, and so would the child: give it the default handler
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if summary(tmp_path)["progress"].get("stage") == "running":
                    break
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.01)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == code, err
    s = summary(tmp_path)
    assert s["status"] == "failed" and s["error_type"] == error_type
    assert s["progress"]["stage"] == "running"
    assert 0 <= s["progress"]["calls_finished"] < s["progress"]["calls_planned"]
    assert not any((tmp_path / f).exists() for f in DATA)
    assert "run folder (failed)" in err


def test_terminated_survives_being_copied_by_its_args() -> None:
    from experiments.run_folder import Terminated

    e = Terminated(signal.SIGTERM)
    copy_ = type(e)(*e.args)  # as SimPy re-raises a process's exception
    assert (copy_.signum, copy_.code, str(copy_)) == (signal.SIGTERM, 143,
                                                       "terminated by SIGTERM")


# --- paper_figs: the sweep goes down with its parent ------------------------------------------
CHILD = """
import signal, subprocess, sys, time
if sys.argv[1] == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
print(worker.pid, flush=True)
time.sleep(120)
"""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, not yet reaped) counts as gone
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


@pytest.mark.parametrize("kind", ["polite", "stubborn"])
def test_stop_sweep_takes_the_whole_process_group_down(kind: str) -> None:
    from paper_figs.sweep import stop_sweep

    proc = subprocess.Popen([sys.executable, "-c", CHILD, kind], stdout=subprocess.PIPE,
                            text=True, process_group=0)
    assert proc.stdout is not None
    worker = int(proc.stdout.readline())
    t0 = time.monotonic()
    stop_sweep(proc, grace_s=1.0)
    assert proc.returncode is not None and time.monotonic() - t0 < 10
    deadline = time.monotonic() + 5
    while alive(worker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(worker)


def test_an_interrupted_sweep_is_stopped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import paper_figs.sweep as sweep
    from experiments.paper import Run
    from paper_figs.store import Store

    started: list[subprocess.Popen[bytes]] = []
    real_popen = subprocess.Popen

    def fake_popen(cmd: list[str], **kw: Any) -> subprocess.Popen[bytes]:
        p = real_popen([sys.executable, "-c", "import time; time.sleep(120)"], **kw)
        started.append(p)
        return p

    real_sleep = time.sleep

    def interrupting_sleep(s: float) -> None:
        if s == 1.0:  # the sweep's polling loop
            raise KeyboardInterrupt
        real_sleep(s)

    monkeypatch.setattr(sweep.subprocess, "Popen", fake_popen)
    monkeypatch.setattr(sweep.time, "sleep", interrupting_sleep)
    store = Store(tmp_path, version="v")
    run = Run(overrides=("+experiment=debate", "backend=echo", "batch_size=2"))
    with pytest.raises(KeyboardInterrupt):
        sweep.run_sweep(store, [run], jobs=1, log=lambda _: None)
    assert started and started[0].returncode is not None
    assert started[0].returncode == -signal.SIGTERM
