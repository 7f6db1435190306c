"""Execute runs as one Hydra multirun sweep with a parallel launcher.

The runs of the paper are not a Cartesian product, so each run's config is composed here
(Hydra compose API, same `conf/` and overrides as `python -m helium_lab.run`), written
resolved as `_sweep/pf_run/<key>.yaml`, and the sweep chooses among them:

    python -m paper_figs.job -m --config-dir <root>/_sweep --config-name pf_base \\
        pf_run=<key1>,<key2>,... hydra/launcher=joblib hydra.launcher.n_jobs=2 \\
        hydra.sweep.dir=<root>/runs 'hydra.sweep.subdir=${hydra:runtime.choices.pf_run}'

`paper_figs.job` is `experiments.cli`'s main with a failing job reported as a failed job
rather than exiting the whole sweep. Jobs are ordered longest first.

The sweep runs in its own process group; if `python -m paper_figs` is interrupted (SIGINT,
Ctrl-C) or terminated (SIGTERM, SIGHUP) while it waits, the whole group gets SIGTERM (each
running job records `failed` in its summary.json, then its worker exits) and, once those
have gone or after `STOP_GRACE_S`, SIGKILL for what is left (`stop_sweep`): no sweep keeps
running, or writing into the results, after its parent has gone.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from experiments.paper import Run
from experiments.run_folder import handle_signals
from helium_lab.io import atomic_write_json
from paper_figs.store import REPO, Store, full_overrides

CONF_DIR = REPO / "conf"
PF_BASE = "defaults:\n  - pf_run: ???\n  - _self_\n"
STOP_GRACE_S = 10.0  # after SIGTERM, how long the sweep's jobs get to record their failure


def compose(runs: Sequence[Run]) -> dict[str, dict[str, Any]]:
    """Resolved config of every run, keyed by run key. Bad overrides raise with the key."""
    from experiments.compose import composer
    from helium_lab.errors import ConfigError

    out: dict[str, dict[str, Any]] = {}
    with composer(CONF_DIR) as compose_run:
        for run in runs:
            try:
                out[run.key] = compose_run(full_overrides(run))
            except ConfigError as e:
                raise ConfigError(f"run {run.key}: {e}") from None
    return out


def estimated_cost(run: Run, history: dict[str, float] | None = None) -> float:
    """Expected wall seconds, only to start the longest jobs first: the last measured time
    of the same run if any, else a rough guess from its size."""
    if history and run.key in history:
        return history[run.key]
    ov = dict(o.lstrip("+").split("=", 1) for o in run.overrides)
    exp = ov.get("experiment", "")
    if exp in ("table5_optimality", "planner_overhead"):
        return 15.0
    if exp != "trading":
        return 3.0 if not exp.startswith("fig10") else 1.0
    cost = 6.0 * (float(ov.get("batch_size", 16)) / 16) ** 2
    cost *= float(ov.get("workflow_params.branches", 8)) / 8
    cost *= float(ov.get("workflow_params.rounds", 2)) / 2
    cost *= {"qwen3-14b": 1.3, "qwen3-32b": 3.0}.get(ov.get("model", ""), 1.0)
    if "engine.kv_capacity_tokens" in ov:
        cost *= 3.0 * 65536 / float(ov["engine.kv_capacity_tokens"])
    return cost


def load_history(store: Store) -> dict[str, float]:
    try:
        data = json.loads((store.root / "timings.json").read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): float(v) for k, v in data.items()} if isinstance(data, dict) else {}


def record_history(store: Store, runs: Sequence[Run]) -> None:
    """Remember each finished run's wall time (`run_wall_s`) for the next sweep's order."""
    hist = load_history(store)
    for run in runs:
        try:
            s = json.loads((store.run_dir(run) / "summary.json").read_text())
            hist[run.key] = float(s["run_wall_s"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
    atomic_write_json(store.root / "timings.json", hist)


def job_finished(summary: Path) -> bool:
    """A job's summary.json says it ended (`ok` or `failed`; it says `running` meanwhile)."""
    try:
        data = json.loads(summary.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("status") != "running"


def group_members(pgid: int) -> list[tuple[int, bool]] | None:
    """(pid, ignores SIGTERM) of every live process of group `pgid`, from /proc; zombies
    (exited, not yet reaped by their new parent) left out. None where there is no /proc."""
    proc_fs = Path("/proc")
    if not (proc_fs / "self" / "status").is_file():
        return None
    members = []
    for entry in proc_fs.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
            if len(fields) < 3 or int(fields[2]) != pgid or fields[0] == "Z":
                continue
            ignored = 0
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("SigIgn:"):
                    ignored = int(line.split()[1], 16)
        except (OSError, ValueError):
            continue
        members.append((int(entry.name), bool(ignored >> (signal.SIGTERM - 1) & 1)))
    return members


def stop_sweep(proc: subprocess.Popen[Any], grace_s: float = STOP_GRACE_S) -> None:
    """Take a sweep started by `run_sweep` down with its launcher's job processes: SIGTERM
    to its process group; once every process that heeds SIGTERM has gone (a job records
    `failed` first), or after `grace_s`, or on a second interrupt, SIGKILL to whatever is
    left (e.g. joblib's resource tracker, which ignores SIGTERM, if it has not followed its
    workers within a second). Returns once the sweep process has exited."""
    if os.name != "posix":
        proc.terminate()
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        return
    pgid = proc.pid  # process_group=0: the sweep leads its own group

    def signal_group(sig: int) -> bool:
        try:
            os.killpg(pgid, sig)
        except (ProcessLookupError, PermissionError):
            return False  # nothing left in the group
        return True

    def wait_until(done: Callable[[list[tuple[int, bool]]], bool], seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            proc.poll()  # reap the leader, so that it does not count as a member
            if not signal_group(0):
                return True
            members = group_members(pgid)
            if members is not None and done(members):
                return True
            time.sleep(0.05)
        return False

    try:
        if signal_group(signal.SIGTERM):
            wait_until(lambda ms: all(ignores for _, ignores in ms), grace_s)
            if not wait_until(lambda ms: not ms, 1.0):
                signal_group(signal.SIGKILL)
    except BaseException:
        signal_group(signal.SIGKILL)
        raise
    finally:
        proc.wait()


def launcher_args(launcher: str, jobs: int) -> list[str]:
    if launcher == "joblib":
        return ["hydra/launcher=joblib", f"hydra.launcher.n_jobs={jobs}"]
    if launcher == "basic":
        return []
    return [f"hydra/launcher={launcher}"]


def run_sweep(store: Store, runs: Sequence[Run], *, jobs: int = 2, launcher: str = "joblib",
              hydra_args: Sequence[str] = (), log: Callable[[str], None] = print) -> int:
    """Launch `runs` (fresh folders) as one multirun; returns the sweep's exit status."""
    if not runs:
        return 0
    history = load_history(store)
    runs = sorted(runs, key=lambda r: estimated_cost(r, history), reverse=True)
    t0 = time.perf_counter()
    configs = compose(runs)
    log(f"composed {len(runs)} configs in {time.perf_counter() - t0:.1f} s")
    sweep_dir = store.root / "_sweep"
    (sweep_dir / "pf_run").mkdir(parents=True, exist_ok=True)
    (sweep_dir / "pf_base.yaml").write_text(PF_BASE)
    for old in (sweep_dir / "pf_run").glob("*.yaml"):
        old.unlink()
    for run in runs:
        cfg = configs[run.key]
        (sweep_dir / "pf_run" / f"{run.key}.yaml").write_text(
            "# @package _global_\n" + OmegaConf.to_yaml(OmegaConf.create(cfg)))
        store.stamp(run, cfg)
    cmd = [sys.executable, "-m", "paper_figs.job", "-m", "--config-dir", str(sweep_dir),
           "--config-name", "pf_base", "pf_run=" + ",".join(r.key for r in runs),
           *launcher_args(launcher, jobs), f"hydra.sweep.dir={store.runs_dir}",
           "hydra.sweep.subdir=${hydra:runtime.choices.pf_run}", *hydra_args]
    logs = store.root / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"sweep-{time.strftime('%Y%m%d-%H%M%S')}.log"
    log(f"launching {len(runs)} runs ({launcher}, {jobs} jobs); log: {log_path}")
    pending = {r.key: r for r in runs}
    with open(log_path, "w") as f:
        f.write(" ".join(cmd) + "\n\n")
        f.flush()
        group = 0 if os.name == "posix" else None  # a process group of its own: stop_sweep
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=f, stderr=subprocess.STDOUT,
                                process_group=group)
        try:
            with handle_signals():  # SIGTERM/SIGHUP raise here too, not only Ctrl-C
                done = 0
                while True:
                    rc = proc.poll()
                    for key in list(pending):
                        if job_finished(store.run_dir(pending[key]) / "summary.json"):
                            del pending[key]
                            done += 1
                            log(f"  [{done:>3}/{len(runs)}] {key}  "
                                f"({time.perf_counter() - t0:.0f} s)")
                    if rc is not None:
                        break
                    time.sleep(1.0)
        except BaseException:
            log("interrupted: stopping the sweep")
            stop_sweep(proc)
            raise
    record_history(store, runs)
    atomic_write_json(store.root / "last_sweep.json", {
        "runs": len(runs), "launcher": launcher, "jobs": jobs, "exit_status": rc,
        "seconds": round(time.perf_counter() - t0, 1), "code_version": store.version,
        "finished": time.strftime("%Y-%m-%d %H:%M:%S")})
    if rc != 0:
        log(f"sweep exited with status {rc}; see {log_path}")
    return rc
