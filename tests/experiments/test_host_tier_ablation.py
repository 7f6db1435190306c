"""experiments.host_tier_ablation: each variant selects what it says, and a small run
writes one row per (system, variant) with the tier's counters only where it is on."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from experiments.compose import compose_once
from experiments.host_tier_ablation import SYSTEMS, main, overrides, variants_of
from experiments.workflow_run import RunSettings


@pytest.mark.parametrize("system", SYSTEMS)
def test_variants_select_the_tier_and_holding(system: str) -> None:
    for variant in variants_of(system):
        e = RunSettings.from_cfg(compose_once(overrides("Debate-MMLU", system, variant,
                                                        1.0))).engine
        assert e.host_tier == (variant != "off")
        assert (e.kv_eviction == "steps_to_execution") == (variant == "tier+hold")
        if variant != "off":
            assert e.host_kv_write_policy == "write_through"
            # KVFlow keeps its own loads (deferred, prefetch); the others load inline
            assert e.host_kv_load == ("deferred" if system == "kvflow" else "inline")


def test_a_small_run_writes_the_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                      ) -> None:
    main(["--workloads", "Debate-MMLU", "--scale", "0.05", "--out", str(tmp_path)])
    (folder,) = tmp_path.iterdir()
    rows = list(csv.DictReader((folder / "ablation.csv").open()))
    assert [(r["system"], r["variant"]) for r in rows] == [
        ("kvflow", "off"), ("kvflow", "tier"), ("kvflow", "tier+hold"),
        ("langgraph", "off"), ("langgraph", "tier"), ("helium", "off"), ("helium", "tier")]
    for r in rows:
        assert float(r["makespan_s"]) > 0
        assert (r["host_hit_rate"] == "") == (r["variant"] == "off")
    assert "| Debate-MMLU | helium | tier |" in (folder / "ablation.md").read_text()
    assert "written:" in capsys.readouterr().out
