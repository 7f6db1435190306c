"""`python -m paper_figs [ARTIFACT ...]`: run what is missing or stale, then draw.

Exit status: 0 all artifacts drawn from complete results; 1 some runs failed or are
missing (those points are drawn empty and listed in REPORT.md); 2 bad input (unknown
artifact, bad option, runs whose overrides do not compose).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

from experiments.paper import (
    ARTIFACT_NAMES,
    DEFAULT_PROFILE,
    PROFILES,
    all_runs,
    build_artifacts,
    resolve_names,
)
from helium_lab.errors import HeliumError
from paper_figs.common import PLANNING_TIME
from paper_figs.store import (
    DEFAULT_ROOT,
    REPO,
    STATUS_TEXT,
    Results,
    RunStatus,
    Store,
    code_version,
)

DEFAULT_OUT = REPO / "paper_figs" / "out"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m paper_figs",
        description="Regenerate the paper's figures and tables (PAPER.md §8) from simulator "
                    "runs: runs what is missing or stale through a Hydra multirun, reuses "
                    "the rest, draws into the output folder and writes REPORT.md.",
        epilog="artifacts: " + ", ".join(ARTIFACT_NAMES))
    p.add_argument("artifacts", nargs="*", help="artifact names (default: all)")
    p.add_argument("--profile", choices=PROFILES, default=DEFAULT_PROFILE,
                   help="paper: the paper's sizes (default; ~10 min on 2 cores); quick: "
                        "reduced sizes for iterating (a few minutes)")
    p.add_argument("--results", type=Path, default=DEFAULT_ROOT, help="results root")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    p.add_argument("--jobs", type=int, default=2, help="parallel jobs (joblib launcher)")
    p.add_argument("--planning-time", choices=PLANNING_TIME, default="off",
                   help="add the planner's measured wall time to latencies (the paper's "
                        "convention; machine-dependent) or not (default: figures depend on "
                        "the simulated clock only)")
    p.add_argument("--launcher", default="joblib",
                   help="Hydra launcher: joblib (default), basic, submitit_slurm, "
                        "submitit_local, ray, ...")
    p.add_argument("--hydra-arg", action="append", default=[], metavar="OVERRIDE",
                   help="extra override for the sweep, e.g. hydra.launcher.partition=gpu")
    p.add_argument("--validation", type=Path, default=None,
                   help="validate_sim run folder for sim_vs_real (default: newest found)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--no-run", action="store_true",
                      help="draw from valid results only; runs not up to date are left out")
    mode.add_argument("--dry-run", action="store_true",
                      help="list the runs and their status, run and draw nothing")
    p.add_argument("--allow-stale", action="store_true",
                   help="with --no-run: draw results of another code version too, "
                        "watermarked STALE and flagged in REPORT.md")
    return p


def find_validation(explicit: Path | None, root: Path) -> tuple[Path | None, str]:
    """The validate_sim run folder to read, and a line saying why (or why none)."""
    if explicit is not None:
        if (explicit / "summary.json").is_file():
            return explicit, f"validation results: {explicit} (given)"
        return None, f"--validation {explicit}: no summary.json there"
    candidates = [root / "validate_sim"]
    for base in (REPO / "outputs" / "validate_sim", REPO / "multirun" / "validate_sim"):
        if base.is_dir():
            candidates += [p.parent for p in base.rglob("summary.json")]
    good = []
    for c in candidates:
        try:
            s = json.loads((c / "summary.json").read_text())
        except (OSError, ValueError):
            continue
        if s.get("status", "ok") == "ok" and isinstance(s.get("workflows"), dict):
            good.append(((c / "summary.json").stat().st_mtime, c))
    if not good:
        return None, ("no validation results found (looked in <results>/validate_sim, "
                      "outputs/validate_sim, multirun/validate_sim)")
    path = max(good)[1]
    return path, f"validation results: {path} (newest found)"


def describe_statuses(statuses: dict[str, RunStatus],
                      log: Callable[[str], None] = print) -> None:
    by: dict[str, list[RunStatus]] = defaultdict(list)
    for st in statuses.values():
        by[st.status].append(st)
    log(f"{len(statuses)} runs: " + ", ".join(f"{len(v)} {STATUS_TEXT[k]}"
                                              for k, v in sorted(by.items())))
    if "stale_code" in by:
        vers = sorted({st.detail for st in by["stale_code"]})
        log(f"  {len(by['stale_code'])} results were made by another code version "
            f"(stamped {'; '.join(vers)}); a normal run re-runs them")
    for k in ("stale_config", "other_run", "no_stamp", "partial", "failed"):
        for st in by.get(k, [])[:10]:
            log(f"  {st.describe()}")
        if len(by.get(k, [])) > 10:
            log(f"  ... and {len(by[k]) - 10} more {STATUS_TEXT[k]}")


def main(argv: Sequence[str] | None = None) -> int:
    t_start = time.perf_counter()
    args = parser().parse_args(argv)
    try:
        names = resolve_names(args.artifacts)
    except HeliumError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.allow_stale and not args.no_run:
        print("error: --allow-stale needs --no-run (otherwise stale runs are re-run)",
              file=sys.stderr)
        return 2
    if args.jobs < 1:
        print("error: --jobs must be at least 1", file=sys.stderr)
        return 2
    arts = build_artifacts(args.profile)
    chosen = [arts[n] for n in names]
    store = Store(args.results)
    runs = all_runs(chosen)
    print(f"paper_figs: {len(chosen)} artifacts ({', '.join(names)}), profile "
          f"{args.profile}, code version {store.version}, results in {store.root}")
    statuses = store.statuses(runs.values())
    describe_statuses(statuses)
    todo = [runs[k] for k, st in statuses.items() if not st.ok]
    if args.dry_run:
        for k, st in statuses.items():
            print(f"  {'ok ' if st.ok else 'RUN'} {k}  [{' '.join(runs[k].overrides)}]")
        return 0
    t_runs = time.perf_counter()
    ran = 0
    if todo and not args.no_run:
        from paper_figs.sweep import run_sweep

        try:
            run_sweep(store, todo, jobs=args.jobs, launcher=args.launcher,
                      hydra_args=args.hydra_arg)
        except HeliumError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        ran = len(todo)
        now = code_version()
        if now != store.version:
            print(f"warning: the sources changed during the sweep (code version "
                  f"{store.version} -> {now}): these results may mix versions; the next "
                  "`python -m paper_figs` re-runs them")
        statuses = store.statuses(runs.values())
        bad = [st for st in statuses.values() if not st.ok]
        if bad:
            print(f"{len(bad)} runs are still not up to date after the sweep:")
            for st in bad[:20]:
                print(f"  {st.describe()}")
    elif todo:
        stale = [r for r in todo if statuses[r.key].status == "stale_code"]
        if args.allow_stale and stale:
            print(f"--allow-stale: {len(stale)} runs of another code version are drawn, "
                  "watermarked STALE")
        left = len(todo) - (len(stale) if args.allow_stale else 0)
        if left:
            print(f"--no-run: {left} runs not up to date are left out of the drawings "
                  "(drawn empty, listed in REPORT.md)")
    t_runs = time.perf_counter() - t_runs

    from paper_figs.artifacts import draw
    from paper_figs.report import save_section, write_report

    t_draw = time.perf_counter()
    results = Results(store, statuses, allow_stale=args.allow_stale)
    validation, vline = (find_validation(args.validation, store.root)
                         if "sim_vs_real" in names else (None, ""))
    if vline:
        print(vline)
    args.out.mkdir(parents=True, exist_ok=True)
    for a in chosen:
        sec = draw(a, results, args.out, code_version=store.version, validation=validation,
                   planning_time=args.planning_time)
        save_section(args.out, sec)
        print(f"{a.name}: " + (", ".join(f for f in sec.files if not f.endswith(".pdf"))))
        for v in sec.verdicts:
            print(f"    {v}")
        if sec.missing:
            print(f"    ({len(sec.missing)} runs missing, drawn empty)")
    t_draw = time.perf_counter() - t_draw
    total = time.perf_counter() - t_start
    n_ok = sum(st.ok for st in statuses.values())
    meta = {"runs": f"{len(runs)} needed, {len(runs) - ran} reused, {ran} launched, "
                    f"{n_ok} up to date at drawing time",
            "time": f"{total:.0f} s total ({t_runs:.0f} s running, {t_draw:.0f} s drawing) "
                    f"for {', '.join(names)}"}
    try:
        last = json.loads((store.root / "last_sweep.json").read_text())
        meta["last sweep"] = (f"{last['runs']} runs in {last['seconds']} s ({last['launcher']}, "
                              f"{last['jobs']} jobs), finished {last['finished']}, code "
                              f"version {last['code_version']}")
    except (OSError, ValueError, KeyError):
        pass
    report = write_report(args.out, profile=args.profile, version=store.version, meta=meta,
                          planning_time=args.planning_time)
    print(f"report: {report}")
    print(f"total time: {total:.1f} s (runs {t_runs:.1f} s, drawing {t_draw:.1f} s)")
    return 0 if n_ok == len(runs) else 1
