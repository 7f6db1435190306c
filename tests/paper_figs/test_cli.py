"""The command line: bad names refused, drawing from (fake) results, REPORT.md written."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from experiments.paper import build_artifacts
from paper_figs.cli import main
from paper_figs.store import Store, code_version
from tests.paper_figs.fakes import fake_summary, write_run


def test_unknown_artifact_is_a_clear_error(capsys: pytest.CaptureFixture[str],
                                            tmp_path: Path) -> None:
    assert main(["fig7", "fig99", "--results", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "unknown artifact(s) ['fig99']" in err and "fig5" in err
    assert not any(tmp_path.iterdir())


def test_dry_run_lists_runs(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["table3", "--dry-run", "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "5 runs: 5 never run" in out and "RUN trading__system-helium_no_kv" in out


def test_no_run_draws_table3_and_report(capsys: pytest.CaptureFixture[str],
                                        tmp_path: Path) -> None:
    root, out = tmp_path / "results", tmp_path / "out"
    store = Store(root, version=code_version())
    art = build_artifacts("quick")["table3"]
    for i, run in enumerate(art.runs):
        write_run(store, run, fake_summary(makespan=100.0 + 10 * i))
    assert main(["table3", "--no-run", "--results", str(root), "--out", str(out)]) == 0
    assert {"table3.md", "table3.csv", "REPORT.md"} <= {p.name for p in out.iterdir()}
    report = (out / "REPORT.md").read_text()
    assert "## table3" in report and "every component reduces latency" in report
    assert "REPRODUCED" in report
    # a stale result is reported and left out, never drawn
    stale = Store(root, version="other")
    write_run(stale, art.runs[1], fake_summary(makespan=1.0))
    capsys.readouterr()
    assert main(["table3", "--no-run", "--results", str(root), "--out", str(out)]) == 1
    printed = capsys.readouterr().out
    assert "made by another code version" in printed and "left out" in printed
    assert "Missing runs (1" in (out / "REPORT.md").read_text()


def test_sim_vs_real_without_validation(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert main(["sim_vs_real", "--no-run", "--results", str(tmp_path / "r"), "--out",
                 str(out), "--validation", str(tmp_path / "nothing")]) == 0
    assert (out / "sim_vs_real.png").is_file() and (out / "sim_vs_real.pdf").is_file()
    assert "no validation results" in (out / "REPORT.md").read_text()


def test_allow_stale_draws_watermarked(capsys: pytest.CaptureFixture[str],
                                       tmp_path: Path) -> None:
    root, out = tmp_path / "results", tmp_path / "out"
    old = Store(root, version="old-version")
    for run in build_artifacts("quick")["table3"].runs:
        write_run(old, run)
    assert main(["table3", "--allow-stale", "--results", str(root)]) == 2  # needs --no-run
    assert main(["table3", "--no-run", "--allow-stale", "--results", str(root), "--out",
                 str(out)]) == 1
    report = (out / "REPORT.md").read_text()
    assert "STALE: drawn with --allow-stale from 5 runs" in report
    assert "[stale] " in report and "Missing runs" not in report


def test_sim_vs_real_from_validation_folder(tmp_path: Path) -> None:
    val = tmp_path / "validate_sim_run"
    val.mkdir()
    rows = {name: {"real_makespan_s": 10.0, "sim_makespan_s": 10.0 * (1 + err),
                   "makespan_rel_err": err, "cached_tokens_rel_err": 0.01,
                   "real": {"cached_tokens": 100}, "sim": {"cached_tokens": 101},
                   "real_steps": steps, "sim_steps": 100, "step_cost_ratio": ratio}
            for name, err, steps, ratio in (("debate", 0.05, 105, 1.04),
                                            ("trading", 0.3, 400, None))}
    # a client program's row simulated again with its real runs' CPU inputs
    rows["trading"]["sim_run_inputs"] = {"makespan_s": 9.0, "makespan_rel_err": 0.1,
                                         "engine_threads": 1.6}
    # a client program's repeats cached different counts; an in-process one's did not
    rows["debate"]["real_cached_tokens_runs"] = [100, 110, 104]
    rows["trading"]["real_cached_tokens_runs"] = [100, 100]
    (val / "summary.json").write_text(json.dumps({
        "status": "ok", "model": "tiny", "hardware": "cpu", "workflows": rows,
        "targets": {"makespan_rel_err": 0.15, "cached_tokens_rel_err": 0.05}}))
    out = tmp_path / "out"
    assert main(["sim_vs_real", "--no-run", "--results", str(tmp_path / "r"), "--out",
                 str(out), "--validation", str(val)]) == 0
    with open(out / "sim_vs_real.csv") as f:
        table = list(csv.DictReader(f))
    assert len(table) == 2 and "_cached_lo" not in table[0]
    assert [r["real_cached_tokens_spread"] for r in table] == ["0.1", "0.0"]
    report = (out / "REPORT.md").read_text()
    assert "NOT REPRODUCED: makespan_rel_err within the 15% target — 1/2 workflows" in report
    assert "REPRODUCED: cached_tokens_rel_err within the 5% target — 2/2" in report
    assert "within 10% on 1/2 workflows" in report
    assert "1.5x the steps on ? trading 4.0x" in report
    assert "own engine steps (in-process engines; the table's time / the measured time): " \
        "1.040-1.040 on 1 workflows" in report
    assert "makespan error within 15% on 1/1 workflows (? trading 30.0% -> 10.0%)" in report
    assert "real cached tokens differ across repeats on 1 workflows (spread max/min - 1: " \
        "? debate 10.0%); the simulated count lies within the repeats' range on 1 of them" \
        in report
