"""`DrawContext`: what a drawer gets, and how it writes.

One per artifact drawn: the artifact (its points and labels), the valid results, the
output folder and the REPORT.md section it fills. Reading a point's summary through it
records the point as missing when its run is not valid; `save`, `csv` and `md` write the
artifact's files (watermarked STALE where stale results were drawn) and list them in the
section.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from experiments.paper import Artifact, Point
from paper_figs.common import Section, latency, write_csv, write_md
from paper_figs.store import Results


@dataclass
class DrawContext:
    """One artifact being drawn: its points, the results, the output folder, its section."""

    artifact: Artifact
    results: Results
    out: Path
    section: Section
    validation: Path | None = None  # sim_vs_real: a validate_sim run folder, if any
    planning_time: str = "off"  # add the planner's measured wall time to latencies?

    @property
    def name(self) -> str:
        return self.artifact.name

    def summary(self, p: Point) -> dict[str, Any] | None:
        s = self.results.summary(p.run)
        if s is None:
            self.section.missing.append(p.run.key)
        return s

    def latency(self, summary: dict[str, Any]) -> float:
        return latency(summary, self.planning_time)

    def value(self, p: Point, fn: Callable[[dict[str, Any]], float] | None = None
              ) -> float | None:
        s = self.summary(p)
        return None if s is None else (fn or self.latency)(s)

    def one(self, **labels: Any) -> Point | None:
        pts = self.artifact.select(**labels)
        return pts[0] if pts else None

    def save(self, fig: Figure) -> None:
        if self.results.used_stale:
            fig.text(0.5, 0.5, "STALE RESULTS (other code version)", ha="center",
                     va="center", fontsize=28, color="red", alpha=0.35, rotation=20)
        for ext in ("png", "pdf"):
            path = self.out / f"{self.name}.{ext}"
            fig.savefig(path, dpi=150 if ext == "png" else None, bbox_inches="tight")
            self.section.files.append(path.name)
        plt.close(fig)

    def csv(self, rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
        write_csv(self.out / f"{self.name}.csv", rows, columns)
        self.section.files.append(f"{self.name}.csv")

    def md(self, header: Sequence[str], rows: Sequence[Sequence[Any]],
           notes: Sequence[str] = (), extra: str = "") -> None:
        write_md(self.out / f"{self.name}.md", f"{self.name}: {self.artifact.title}", header,
                 rows, [*notes, *(f"Reduced: {r}" for r in self.artifact.reductions)], extra)
        self.section.files.append(f"{self.name}.md")
