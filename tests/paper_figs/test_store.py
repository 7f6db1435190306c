"""Reuse and staleness: only complete runs of this code version and config are reused."""

from __future__ import annotations

import json
from pathlib import Path

from experiments.paper import Run
from paper_figs.store import STAMP, Results, Store, code_version
from tests.paper_figs.fakes import fake_summary, write_run

RUN = Run(("+experiment=debate", "system=helium", "batch_size=4"))


def test_missing_then_ok(tmp_path: Path) -> None:
    store = Store(tmp_path, version="v1")
    assert store.status(RUN).status == "missing"
    write_run(store, RUN)
    assert store.status(RUN).ok
    res = Results(store, store.statuses([RUN]))
    summary, ts = res.summary(RUN), res.timeseries(RUN)
    assert summary is not None and summary["makespan_s"] == 100.0
    assert len(res.calls(RUN) or []) == 4
    assert ts is not None and ts[0]["running"] == 2.0


def test_other_code_version_is_stale(tmp_path: Path) -> None:
    write_run(Store(tmp_path, version="v1"), RUN)
    st = Store(tmp_path, version="v2").status(RUN)
    assert st.status == "stale_code" and "v1" in st.detail and "v2" in st.detail
    assert "another code version" in st.describe()
    # stale runs read as absent: never drawn
    store = Store(tmp_path, version="v2")
    assert Results(store, store.statuses([RUN])).summary(RUN) is None


def test_edited_config_is_stale(tmp_path: Path) -> None:
    store = Store(tmp_path, version="v1")
    d = write_run(store, RUN)
    (d / "config.yaml").write_text("task: workflow\nbatch_size: 5\n")
    assert store.status(RUN).status == "stale_config"


def test_partial_failed_unstamped_and_foreign(tmp_path: Path) -> None:
    store = Store(tmp_path, version="v1")
    d = write_run(store, RUN)
    (d / "calls.jsonl").unlink()
    assert store.status(RUN).status == "partial"
    d = write_run(store, RUN)
    (d / "summary.json").unlink()
    assert store.status(RUN).status == "partial"
    write_run(store, RUN, summary=fake_summary(status="failed", error="boom"))
    st = store.status(RUN)
    assert st.status == "failed" and "boom" in st.detail
    d = write_run(store, RUN)
    (d / STAMP).unlink()
    assert store.status(RUN).status == "no_stamp"
    d = write_run(store, RUN)
    stamp = json.loads((d / STAMP).read_text())
    stamp["overrides"] = ["+experiment=debate", "system=opwise"]
    (d / STAMP).write_text(json.dumps(stamp))
    assert store.status(RUN).status == "other_run"


def test_stamp_starts_afresh(tmp_path: Path) -> None:
    store = Store(tmp_path, version="v1")
    d = write_run(store, RUN)
    store.stamp(RUN, {"task": "workflow"})
    assert sorted(p.name for p in d.iterdir()) == [STAMP]
    assert store.status(RUN).status == "partial"


def test_code_version_tracks_sources(tmp_path: Path) -> None:
    (tmp_path / "sim").mkdir()
    (tmp_path / "experiments").mkdir()
    f = tmp_path / "sim" / "engine.py"
    f.write_text("x = 1\n")
    (tmp_path / "experiments" / "paper.py").write_text("A = 1\n")
    v1 = code_version(tmp_path)
    assert code_version(tmp_path) == v1
    (tmp_path / "experiments" / "paper.py").write_text("A = 2\n")  # the registry: excluded
    assert code_version(tmp_path) == v1
    f.write_text("x = 2\n")
    assert code_version(tmp_path) != v1
