"""The artifact registry: one drawer per artifact, one module per drawer, and `draw`.

A drawer `draw_<name>(ctx: DrawContext)` reads valid runs, writes the figure/table and its
CSV (exactly the numbers drawn), and fills the REPORT.md section with verdicts computed
from numbers. The runs each artifact needs stay in `experiments.paper` (`build_artifacts`:
one function shares the profile's sizes and reductions, and the file is the registry that
the code version leaves out); the paper's numbers are in `experiments.paper_numbers`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before any drawer imports pyplot: files only, never a window

from experiments.paper import Artifact
from paper_figs.artifacts.fig5 import draw_fig5
from paper_figs.artifacts.fig7 import draw_fig7
from paper_figs.artifacts.fig8 import draw_fig8
from paper_figs.artifacts.fig9 import draw_fig9
from paper_figs.artifacts.fig10 import draw_fig10
from paper_figs.artifacts.fig11 import draw_fig11
from paper_figs.artifacts.fig12 import draw_fig12
from paper_figs.artifacts.sim_vs_real import draw_sim_vs_real
from paper_figs.artifacts.table2 import draw_table2
from paper_figs.artifacts.table3 import draw_table3
from paper_figs.artifacts.table4 import draw_table4
from paper_figs.artifacts.table5 import draw_table5
from paper_figs.artifacts.table7 import draw_table7
from paper_figs.common import Section
from paper_figs.context import DrawContext
from paper_figs.store import Results

Drawer = Callable[[DrawContext], None]

DRAWERS: dict[str, Drawer] = {
    "fig5": draw_fig5, "table2": draw_table2, "fig7": draw_fig7, "table3": draw_table3,
    "table4": draw_table4, "table5": draw_table5, "fig8": draw_fig8, "fig9": draw_fig9,
    "fig10": draw_fig10, "fig11": draw_fig11, "fig12": draw_fig12, "table7": draw_table7,
    "sim_vs_real": draw_sim_vs_real,
}


def draw(artifact: Artifact, results: Results, out: Path, *, code_version: str = "",
         validation: Path | None = None, planning_time: str = "off") -> Section:
    """Draw one artifact into `out` with its registered drawer; its REPORT.md section, with
    verdicts marked [stale] where results of another code version were drawn."""
    out.mkdir(parents=True, exist_ok=True)
    sec = Section(artifact.name, artifact.title, reductions=list(artifact.reductions),
                  notes=list(artifact.notes), code_version=code_version)
    ctx = DrawContext(artifact, results, out, sec, validation, planning_time)
    results.used_stale = set()
    DRAWERS[artifact.name](ctx)
    sec.missing = sorted(set(sec.missing))
    if results.used_stale:
        versions = sorted({results.statuses[k].detail.split(",")[0]
                           for k in results.used_stale})
        sec.notes.insert(0, f"STALE: drawn with --allow-stale from {len(results.used_stale)} "
                            f"runs of another code version ({', '.join(versions)})")
        sec.verdicts = [f"[stale] {v}" for v in sec.verdicts]
    return sec
