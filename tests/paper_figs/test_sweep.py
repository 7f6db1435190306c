"""The sweep path: registry overrides compose; a tiny multirun (echo backend) stamps its
runs, and a failing job does not stop the others."""

from __future__ import annotations

from pathlib import Path

import pytest

from experiments.paper import Run, all_runs, build_artifacts
from helium_lab.errors import ConfigError
from paper_figs.store import Store
from paper_figs.sweep import compose, estimated_cost, run_sweep


def test_every_kind_of_registry_run_composes() -> None:
    runs = all_runs(build_artifacts("paper").values())
    by_shape: dict[tuple[str, ...], Run] = {}
    for r in runs.values():
        shape = tuple(o.split("=")[0] if not o.startswith("+experiment=") else o
                      for o in r.overrides if not o.startswith("system="))
        by_shape.setdefault(shape, r)
    cfgs = compose(list(by_shape.values()))
    assert len(cfgs) == len(by_shape) >= 10
    for key, cfg in cfgs.items():
        assert cfg["progress"] is False, key
    fig10 = next(c for k, c in cfgs.items() if k.startswith("fig10_debate"))
    assert fig10["workflow"] == "synthetic_debate" and fig10["batch_size"] == 100


def test_bad_overrides_are_a_config_error() -> None:
    with pytest.raises(ConfigError, match="do not compose"):
        compose([Run(("+experiment=debate", "no_such_key=1"))])


def test_cost_prefers_history() -> None:
    big, small = Run(("+experiment=trading", "system=helium", "batch_size=80")), Run(
        ("+experiment=trading", "system=helium"))
    assert estimated_cost(big) > estimated_cost(small)
    assert estimated_cost(big, {big.key: 1.0}) == 1.0


def test_tiny_sweep(tmp_path: Path) -> None:
    store = Store(tmp_path, version="v")
    good = Run(("+experiment=debate", "backend=echo", "batch_size=2"))
    bad = Run(("+experiment=debate", "backend=echo", "batch_size=2", "+workflow_params.x=1"))
    lines: list[str] = []
    rc = run_sweep(store, [bad, good], jobs=2, log=lines.append)
    assert rc != 0  # one job failed ...
    assert store.status(good).ok  # ... the other still ran and is reusable
    st = store.status(bad)
    assert st.status == "failed" and "unknown parameter" in st.detail
    assert any("[  2/2]" in line for line in lines)
    assert (tmp_path / "timings.json").is_file()
