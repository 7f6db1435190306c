"""The planner (`helium_lab/`) imports no backend and no layer above it; the simulator and
the runtime do not import each other. Checked on the source, statically."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# entry points that wire the layers together: `python -m helium_lab.run` (starts
# experiments.cli, no more) and `python -m sim.bench` (composes Helium's config as a run)
SHIMS = {"helium_lab/run.py", "sim/bench.py"}

FORBIDDEN = {
    "helium_lab": {"sim", "runtime", "experiments", "paper_figs"},
    "sim": {"runtime", "experiments", "paper_figs"},
    "runtime": {"sim", "experiments", "paper_figs"},
}


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module.split(".")[0])
    return out


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_layers_import_only_downwards(package: str) -> None:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files
    bad = {str(p.relative_to(ROOT)): sorted(imported_packages(p) & FORBIDDEN[package])
           for p in files if str(p.relative_to(ROOT)) not in SHIMS}
    assert {k: v for k, v in bad.items() if v} == {}
