"""The results folder: one sub-folder per run, stamped, validated before reuse.

Layout under the results root (default `paper_figs/results/`):

    runs/<run key>/         the Hydra job folder of one `helium_lab.run` job: config.yaml,
                            summary.json, calls.jsonl, timeseries.csv, ... and our stamp
                            `paper_figs.json` = {key, overrides, code_version, config_sha256}
    _sweep/                 generated Hydra configs of the last sweep (pf_base, pf_run/*)
    logs/                   one log per sweep

A run is reused only if its stamp names the same overrides and the current code version,
its config.yaml hashes to the stamped config, its summary says `ok` and its data files are
all there. Anything else gets a status saying why and is re-run.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO, TypeVar

from omegaconf import OmegaConf

from experiments.paper import Run

T = TypeVar("T")

REPO = Path(__file__).resolve().parent.parent
DEFAULT_ROOT = REPO / "paper_figs" / "results"
STAMP = "paper_figs.json"
# Sources whose every byte may change a result; the registry only says *what* to run and
# the paper's numbers only what to compare with.
CODE_DIRS = ("helium_lab", "sim", "experiments", "conf")
CODE_SUFFIXES = (".py", ".yaml", ".yml", ".json")
CODE_EXCLUDE = ("experiments/paper.py", "experiments/paper_numbers.py")
# Appended to every run's overrides (part of its config, not of its key).
EXTRA_OVERRIDES = ("progress=false",)
WORKFLOW_FILES = ("config.yaml", "summary.json", "calls.jsonl", "timeseries.csv")
TASK_FILES = ("config.yaml", "summary.json")

OK = "ok"
STATUS_TEXT = {
    "ok": "up to date",
    "missing": "never run",
    "partial": "partial (interrupted: files missing)",
    "failed": "failed",
    "no_stamp": "no paper_figs stamp (not made by paper_figs, or interrupted at launch)",
    "other_run": "the folder holds a run with other overrides",
    "stale_code": "made by another code version (helium_lab/, sim/, experiments/ or conf/ "
                  "changed since)",
    "stale_config": "config.yaml differs from the config it was launched with",
}


def code_version(repo: Path = REPO) -> str:
    """A short hash of every source and config file that can change a result."""
    h = hashlib.sha256()
    for d in CODE_DIRS:
        base = repo / d
        if not base.is_dir():
            continue
        for p in sorted(base.rglob("*")):
            rel = p.relative_to(repo).as_posix()
            if (not p.is_file() or p.suffix not in CODE_SUFFIXES or rel in CODE_EXCLUDE
                    or "__pycache__" in p.parts):
                continue
            h.update(rel.encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def config_sha(cfg: Mapping[str, Any]) -> str:
    """Hash of a resolved config (canonical JSON)."""
    return hashlib.sha256(json.dumps(cfg, sort_keys=True, default=str).encode()).hexdigest()


def load_config_yaml(path: Path) -> dict[str, Any]:
    data = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    if not isinstance(data, dict):
        raise ValueError(f"{path} is not a mapping")
    return {str(k): v for k, v in data.items()}


def full_overrides(run: Run) -> list[str]:
    return [*run.overrides, *EXTRA_OVERRIDES]


@dataclass(frozen=True)
class RunStatus:
    key: str
    status: str
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status == OK

    def describe(self) -> str:
        text = STATUS_TEXT.get(self.status, self.status)
        return f"{self.key}: {text}" + (f" ({self.detail})" if self.detail else "")


class Store:
    def __init__(self, root: Path = DEFAULT_ROOT, version: str | None = None) -> None:
        self.root = Path(root)
        self.version = version if version is not None else code_version()

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    def run_dir(self, run: Run) -> Path:
        return self.runs_dir / run.key

    # --- validation ---------------------------------------------------------------------
    def status(self, run: Run) -> RunStatus:
        d = self.run_dir(run)
        if not d.is_dir() or not any(d.iterdir()):
            return RunStatus(run.key, "missing")
        try:
            stamp = json.loads((d / STAMP).read_text())
        except FileNotFoundError:
            return RunStatus(run.key, "no_stamp")
        except (OSError, ValueError) as e:
            return RunStatus(run.key, "no_stamp", f"unreadable stamp: {e}")
        if list(stamp.get("overrides", [])) != full_overrides(run):
            return RunStatus(run.key, "other_run", f"stamped {stamp.get('overrides')}")
        if stamp.get("code_version") != self.version:
            return RunStatus(run.key, "stale_code",
                             f"{stamp.get('code_version')}, current {self.version}")
        summary_path = d / "summary.json"
        if summary_path.is_file():
            try:
                summary = json.loads(summary_path.read_text())
            except ValueError as e:
                return RunStatus(run.key, "partial", f"summary.json unreadable: {e}")
            if summary.get("status") != "ok":
                return RunStatus(run.key, "failed", str(summary.get("error", "no error text")))
        needed = WORKFLOW_FILES if run.task == "workflow" else TASK_FILES
        missing = [f for f in needed if not (d / f).is_file()]
        if missing:
            return RunStatus(run.key, "partial", f"missing {', '.join(missing)}")
        try:
            sha = config_sha(load_config_yaml(d / "config.yaml"))
        except (OSError, ValueError) as e:
            return RunStatus(run.key, "partial", f"config.yaml unreadable: {e}")
        if sha != stamp.get("config_sha256"):
            return RunStatus(run.key, "stale_config")
        return RunStatus(run.key, OK)

    def statuses(self, runs: Iterable[Run]) -> dict[str, RunStatus]:
        return {r.key: self.status(r) for r in runs}

    def stamp(self, run: Run, cfg: Mapping[str, Any]) -> None:
        """Start a run's folder afresh (old contents removed) with its stamp."""
        import shutil

        from helium_lab.io import atomic_write_json

        d = self.run_dir(run)
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
        atomic_write_json(d / STAMP, {"key": run.key, "overrides": full_overrides(run),
                                      "code_version": self.version,
                                      "config_sha256": config_sha(cfg)})


class Results:
    """Read access to valid runs only: anything not `ok` reads as None."""

    def __init__(self, store: Store, statuses: Mapping[str, RunStatus],
                 allow_stale: bool = False) -> None:
        self.store = store
        self.statuses = dict(statuses)
        self.allow_stale = allow_stale
        self.used_stale: set[str] = set()  # stale runs read (only with allow_stale)
        self._cache: dict[tuple[str, str], Any] = {}

    def ok(self, run: Run) -> bool:
        st = self.statuses.get(run.key)
        if st is not None and self.allow_stale and st.status == "stale_code":
            self.used_stale.add(run.key)
            return True
        return st is not None and st.ok

    def summary(self, run: Run) -> dict[str, Any] | None:
        return self._load(run, "summary.json", json.load)

    def calls(self, run: Run) -> list[dict[str, Any]] | None:
        return self._load(run, "calls.jsonl",
                          lambda f: [json.loads(line) for line in f if line.strip()])

    def timeseries(self, run: Run) -> list[dict[str, float]] | None:
        return self._load(run, "timeseries.csv",
                          lambda f: [{k: float(v) for k, v in row.items()}
                                     for row in csv.DictReader(f)])

    def _load(self, run: Run, name: str, parse: Callable[[TextIO], T]) -> T | None:
        """`parse` of the run's file `name`, read once; None if the run is not usable."""
        if not self.ok(run):
            return None
        key = (run.key, name)
        if key not in self._cache:
            with open(self.store.run_dir(run) / name) as f:
                self._cache[key] = parse(f)
        out: T = self._cache[key]
        return out
