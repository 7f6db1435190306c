"""The run folder is always true (docs/reliability.md, "The run folder"): summary.json says
running, ok or failed (with the error and how far the run got), a re-run never leaves an
earlier run's files, folder names are unique, files are group-readable, every
configuration error exits 2 naming the key. Signals and interrupted sweeps:
test_run_signals.py."""

from __future__ import annotations

import copy
import json
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from experiments.cli import main, run_task
from experiments.run_folder import RUN_FILES, RunFolder
from helium_lab.errors import ConfigError
from helium_lab.io import atomic_write_text, check_writable_file
from helium_lab.processor.query_processor import QueryProcessor
from tests.experiments.test_experiments import CONF, config

ECHO = ("+experiment=debate", "backend=echo", "batch_size=2", "progress=false")
DATA = ("calls.jsonl", "outputs.jsonl", "timeseries.csv")


def summary(d: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((d / "summary.json").read_text())
    return data


def hydra_cfg(*overrides: str) -> DictConfig:
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        return compose("config", overrides=[*ECHO, *overrides], return_hydra_config=True)


def run_main(run_dir: Path, *overrides: str) -> None:
    """`experiments.cli.main` in this process, as Hydra calls it, into `run_dir`."""
    cfg = hydra_cfg(*overrides)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(run_dir)
    task_cfg = copy.deepcopy(cfg)
    with open_dict(task_cfg):
        del task_cfg["hydra"]
    old = HydraConfig.instance().cfg
    HydraConfig.instance().set_config(cfg)
    try:
        main.__wrapped__(task_cfg)
    finally:
        HydraConfig.instance().cfg = old


def cli(*args: str, cwd: Path | None = None, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "helium_lab.run", *args], capture_output=True,
                          text=True, timeout=180, cwd=cwd, **kw)


# --- status ---------------------------------------------------------------------------------
def test_ok_run_says_ok_and_lists_its_files(tmp_path: Path) -> None:
    run_main(tmp_path)
    s = summary(tmp_path)
    assert s["status"] == "ok" and s["num_llm_calls"] == 12 and s["task"] == "workflow"
    assert s["files"] == sorted(["config.yaml", *DATA])
    assert s["pid"] == os.getpid() and s["host"] == socket.gethostname()


def test_summary_says_running_while_the_run_is_in_progress(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[dict[str, Any]] = []
    orig = QueryProcessor.on_finished

    def spy(self: QueryProcessor, result: Any) -> Any:
        if not seen:
            seen.append(summary(tmp_path))
        return orig(self, result)

    monkeypatch.setattr(QueryProcessor, "on_finished", spy)
    run_main(tmp_path)
    assert seen[0]["status"] == "running"
    assert seen[0]["progress"]["stage"] == "running"
    assert seen[0]["progress"]["calls_planned"] == 12
    assert summary(tmp_path)["status"] == "ok"


def test_a_failure_mid_run_says_failed_with_the_error_and_calls_finished(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    orig = QueryProcessor.on_finished

    def flaky(self: QueryProcessor, result: Any) -> Any:
        if len(self.records) == 3:
            raise RuntimeError("engine lost")
        return orig(self, result)

    monkeypatch.setattr(QueryProcessor, "on_finished", flaky)
    with pytest.raises(RuntimeError, match="engine lost"):
        run_main(tmp_path)
    s = summary(tmp_path)
    assert s["status"] == "failed" and s["error_type"] == "RuntimeError"
    assert s["error"] == "engine lost"
    assert s["progress"] == {"batch": "measured batch", "stage": "running",
                             "calls_planned": 12, "calls_finished": 3}
    assert s["files"] == ["config.yaml"]
    assert not any((tmp_path / f).exists() for f in DATA)


def test_a_config_error_says_failed_and_exits_2(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as e:
        run_main(tmp_path, "batch_size=0")
    assert e.value.code == 2
    s = summary(tmp_path)
    assert s["status"] == "failed" and s["error_type"] == "ConfigError"
    assert "batch_size" in s["error"]


# --- re-runs into the same folder -------------------------------------------------------
def test_a_failed_rerun_leaves_no_stale_files(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_main(tmp_path)
    assert all((tmp_path / f).is_file() for f in DATA)
    (tmp_path / "notes.txt").write_text("mine")  # not a run file: left alone
    (tmp_path / ".calls.jsonl.abc123.tmp").write_text("half")  # a killed write's temp file

    def boom(self: QueryProcessor, result: Any) -> Any:
        raise RuntimeError("engine lost")

    monkeypatch.setattr(QueryProcessor, "on_finished", boom)
    with pytest.raises(RuntimeError):
        run_main(tmp_path)
    assert summary(tmp_path)["status"] == "failed"
    assert not any((tmp_path / f).exists() for f in DATA)
    assert not (tmp_path / ".calls.jsonl.abc123.tmp").exists()
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_a_rerun_that_fails_at_once_leaves_no_stale_files(tmp_path: Path) -> None:
    run_main(tmp_path)
    with pytest.raises(SystemExit) as e:
        run_main(tmp_path, "+batch_sise=4")
    assert e.value.code == 2
    assert summary(tmp_path)["status"] == "failed"
    assert not any((tmp_path / f).exists() for f in DATA)
    assert not (tmp_path / "config.yaml").exists() or "batch_sise" in (
        tmp_path / "config.yaml").read_text()  # config.yaml, if any, is this run's


def test_a_rerun_starts_clean_and_says_ok(tmp_path: Path) -> None:
    run_main(tmp_path, "batch_size=3")
    run_main(tmp_path)
    s = summary(tmp_path)
    assert s["status"] == "ok" and s["batch_size"] == 2
    assert len((tmp_path / "outputs.jsonl").read_text().splitlines()) == 2


def test_a_folder_in_use_by_a_live_run_is_refused(tmp_path: Path) -> None:
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        held = {"status": "running", "host": socket.gethostname(), "pid": live.pid}
        (tmp_path / "summary.json").write_text(json.dumps(held))
        (tmp_path / "calls.jsonl").write_text("theirs\n")
        with pytest.raises(ConfigError, match=rf"still in progress \(pid {live.pid}\)"):
            RunFolder(tmp_path).start()
        assert summary(tmp_path) == held  # nothing of the live run was touched
        assert (tmp_path / "calls.jsonl").read_text() == "theirs\n"
    finally:
        live.kill()
        live.wait()
    RunFolder(tmp_path).start()  # its process is gone: the folder is stale, taken over
    assert summary(tmp_path)["status"] == "running"
    assert not (tmp_path / "calls.jsonl").exists()


# --- names and modes ----------------------------------------------------------------------
def test_two_runs_in_the_same_second_get_different_folders(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import datetime as dt

    import hydra.core.utils as hydra_utils

    class SameSecond(dt.datetime):
        @classmethod
        def now(cls, tz: Any = None) -> SameSecond:
            real = dt.datetime.now(tz)
            return cls(2026, 1, 1, 12, 0, 0, real.microsecond)

    monkeypatch.setattr(hydra_utils, "datetime", SameSecond)
    dirs = [str(hydra_cfg().hydra.run.dir) for _ in range(2)]
    assert dirs[0] != dirs[1]
    assert all(d.startswith("outputs/workflow/2026-01-01_12-00-00.") for d in dirs)
    assert all(d.endswith(f"_{os.getpid()}") for d in dirs)


def test_two_processes_started_together_get_different_folders(tmp_path: Path) -> None:
    procs = [subprocess.Popen([sys.executable, "-m", "helium_lab.run", *ECHO], cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=180)
        assert p.returncode == 0, err
    folders = sorted((tmp_path / "outputs" / "workflow").iterdir())
    assert len(folders) == 2
    assert all(summary(f)["status"] == "ok" for f in folders)


def test_run_files_are_group_readable(tmp_path: Path) -> None:
    done = cli(*ECHO, f"hydra.run.dir={tmp_path}", umask=0o022)  # the usual umask
    assert done.returncode == 0, done.stderr
    for name in ("config.yaml", "summary.json", *DATA):
        mode = stat.S_IMODE((tmp_path / name).stat().st_mode)
        assert mode == 0o644, (name, oct(mode))


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_atomic_writes_respect_the_umask(umask: int, mode: int, tmp_path: Path) -> None:
    old = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "f.json", "{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "f.json").stat().st_mode) == mode


def test_atomic_writes_keep_the_mode_of_the_file_they_replace(tmp_path: Path) -> None:
    target = tmp_path / "store.json"
    target.write_text("old")
    target.chmod(0o660)  # e.g. a prompt-cache store shared by a group
    atomic_write_text(target, "new")
    assert stat.S_IMODE(target.stat().st_mode) == 0o660 and target.read_text() == "new"


def test_run_files_cover_every_file_a_task_writes() -> None:
    assert {"config.yaml", "summary.json", *DATA, "validation.json",
            "cost_table.json"} <= set(RUN_FILES)


# --- configuration errors exit 2 --------------------------------------------------------
@pytest.mark.parametrize(("override", "named"), [
    ("+batch_sise=4", "batch_sise"),          # accepted by Hydra, refused by our schema
    ("batch_sise=4", "batch_sise"),           # refused by Hydra (not in the config)
    ("system=fastest", "system/fastest"),     # a missing config group option
    ("+experiment=nope", "experiment/nope"),
    ("batch_size=${oc.env:HELIUM_UNSET_VAR}", "batch_size"),  # does not resolve
    ("system.policy=fastest", "unknown policy 'fastest'"),
])
def test_every_configuration_error_exits_2_naming_the_key(
        override: str, named: str, tmp_path: Path) -> None:
    done = cli(*ECHO, override, f"hydra.run.dir={tmp_path / 'run'}")
    assert done.returncode == 2, done.stderr
    assert named in done.stderr


def test_a_bad_sweep_value_exits_2(tmp_path: Path) -> None:
    done = cli("-m", *ECHO, "system=helium,fastest", f"hydra.sweep.dir={tmp_path}")
    assert done.returncode == 2 and "system/fastest" in done.stderr


def test_a_sweep_runs_every_point_and_names_the_failed_ones(tmp_path: Path) -> None:
    done = cli("-m", *ECHO, "seed=-1,0", f"hydra.sweep.dir={tmp_path}")
    assert done.returncode == 2, done.stderr
    assert "1 sweep job(s) failed" in done.stderr and str(tmp_path / "0") in done.stderr
    assert summary(tmp_path / "0")["status"] == "failed"
    assert summary(tmp_path / "1")["status"] == "ok"  # the point after the bad one ran


def test_a_sweep_goes_on_after_a_bug_and_exits_1(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", BUGGY_RUN, "-m", *ECHO, "seed=0,1",
                           f"hydra.sweep.dir={tmp_path}"],
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 1, done.stderr
    assert "2 sweep job(s) failed" in done.stderr and "a bug" in done.stderr
    assert [summary(tmp_path / d)["status"] for d in ("0", "1")] == ["failed", "failed"]


BUGGY_RUN = """
import sys
from helium_lab.processor.query_processor import QueryProcessor
def boom(self, result):
    raise RuntimeError("a bug")
QueryProcessor.on_finished = boom
import runpy
sys.argv = ["run", *sys.argv[1:]]
runpy.run_module("helium_lab.run", run_name="__main__", alter_sys=True)
"""


def test_a_bug_is_not_a_configuration_error(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", BUGGY_RUN, *ECHO, f"hydra.run.dir={tmp_path}"],
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 1, done.stderr
    assert "a bug" in done.stderr and "configuration error" not in done.stderr
    s = summary(tmp_path)
    assert s["status"] == "failed" and s["error_type"] == "RuntimeError"


def test_unknown_top_level_key_is_refused_in_process(tmp_path: Path) -> None:
    cfg = config("debate", "batch_size=2", "+batch_sise=4")
    with pytest.raises(ConfigError, match=r"unknown top-level config key\(s\) \['batch_sise'\]"):
        run_task(cfg, tmp_path)


def test_task_blocks_are_known_to_their_task_only(tmp_path: Path) -> None:
    cfg = config("debate", "batch_size=2", "+table5={}")
    with pytest.raises(ConfigError, match="table5"):
        run_task(cfg, tmp_path)


# --- the prompt-cache store is checked before the run ----------------------------------
def test_prompt_cache_path_that_is_a_folder_exits_2_before_running(tmp_path: Path) -> None:
    store = tmp_path / "store"
    store.mkdir()
    done = cli(*ECHO, f"planner.prompt_cache_path={store}", f"hydra.run.dir={tmp_path / 'r'}")
    assert done.returncode == 2
    assert "planner.prompt_cache_path" in done.stderr and "is a folder" in done.stderr
    s = summary(tmp_path / "r")
    assert s["status"] == "failed" and s["progress"] == {} and s["files"] == ["config.yaml"]


def test_prompt_cache_path_under_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    cfg = config("debate", "backend=echo", "batch_size=2",
                 f"planner.prompt_cache_path={tmp_path / 'file' / 'sub' / 'store.json'}")
    with pytest.raises(ConfigError, match=r"planner\.prompt_cache_path=.*is not a folder"):
        run_task(cfg, tmp_path / "r")
    assert not (tmp_path / "r" / "calls.jsonl").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_prompt_cache_path_in_a_read_only_folder_is_refused(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(ConfigError, match=r"planner\.prompt_cache_path=.*cannot write"):
            check_writable_file(ro / "store.json", "planner.prompt_cache_path")
        cfg = config("debate", "backend=echo", "batch_size=2",
                     f"planner.prompt_cache_path={ro / 'store.json'}")
        with pytest.raises(ConfigError, match=r"planner\.prompt_cache_path"):
            run_task(cfg, tmp_path / "r")
    finally:
        ro.chmod(0o755)


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs /proc (Linux)")
def test_prompt_cache_path_on_a_read_only_file_system_is_refused() -> None:
    # /proc refuses new files even to root: a stand-in for a read-only mount
    with pytest.raises(ConfigError, match=r"planner\.prompt_cache_path=.*cannot write"):
        check_writable_file("/proc/self/helium_store.json", "planner.prompt_cache_path")


def test_a_writable_prompt_cache_path_is_saved_and_the_check_leaves_nothing(
        tmp_path: Path) -> None:
    store = tmp_path / "new" / "store.json"
    check_writable_file(store, "planner.prompt_cache_path")
    assert not (tmp_path / "new").exists() and list(tmp_path.iterdir()) == []
    run_task(config("debate", "backend=echo", "batch_size=2",
                    f"planner.prompt_cache_path={store}"), tmp_path / "r")
    assert json.loads(store.read_text())["version"] == 2
