"""Drawing helpers shared by several artifact drawers (`paper_figs.artifacts`).

The paper's numbers on a panel (`paper_note`, `paper_point`), grouped bars with missing
points marked (`grouped_bars`), the Helium-vs-LangGraph scaling panels of Figs. 8 and 9
(`pair_panels`), and the per-workload latencies of Fig. 5 and Table 2
(`workload_latencies`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes

from experiments.paper import SCALING_SYSTEMS, WORKLOADS
from paper_figs.common import SYSTEM_COLORS, label
from paper_figs.context import DrawContext


def paper_note(ax: Axes, text: str) -> None:
    """The paper's stated numbers, in a box under the panel (never over the data)."""
    ax.text(0.0, -0.22, text, transform=ax.transAxes, va="top", ha="left", fontsize=7,
            bbox={"boxstyle": "round", "fc": "#fff8dc", "ec": "#999999"})


def paper_point(ax: Axes, x: float, y: float, text: str) -> None:
    """A paper's stated value as a star on the panel, labelled in the legend."""
    ax.scatter([x], [y], color="black", marker="*", s=140, zorder=5, label=text)


def _tick(x: Any) -> str:
    """KV capacities as powers of two (the paper's labels), anything else as is."""
    if isinstance(x, int) and x >= 1024 and x & (x - 1) == 0:
        return f"$2^{{{x.bit_length() - 1}}}$"
    return str(x)


def grouped_bars(ax: Axes, groups: Sequence[Any], systems: Sequence[str],
                 values: dict[tuple[Any, str], float | None], *, log: bool = False) -> None:
    """One bar per (group, system) in the system's color; a missing value is an ×."""
    width = 0.8 / len(systems)
    x = np.arange(len(groups))
    for i, sy in enumerate(systems):
        ys = [values.get((g, sy)) for g in groups]
        xs = [xi + (i - (len(systems) - 1) / 2) * width for xi in x]
        ax.bar([a for a, y in zip(xs, ys, strict=True) if y is not None],
               [y for y in ys if y is not None], width, label=label(sy),
               color=SYSTEM_COLORS.get(sy))
        for a, y in zip(xs, ys, strict=True):
            if y is None:
                ax.text(a, 0.0, "×", ha="center", va="bottom", fontsize=7, color="gray")
    ax.set_xticks(x, [_tick(g) for g in groups])
    if log:
        ax.set_yscale("log")


def workload_latencies(ctx: DrawContext, systems: Sequence[str]
                       ) -> dict[tuple[str, str], float | None]:
    """Latency of each (workload, system) point of the artifact (None: not valid)."""
    return {(wl, sy): ctx.value(p) for wl in WORKLOADS for sy in systems
            if (p := ctx.one(workload=wl, system=sy)) is not None}


def pair_panels(ctx: DrawContext, panels: Sequence[tuple[str, str, Sequence[Any]]],
                figsize: tuple[float, float]) -> dict[tuple[str, Any, str], float | None]:
    """Helium vs LangGraph latencies, one panel per (panel, x label, x values), saved with
    their CSV; the values by (panel, x, system)."""
    fig, axes = plt.subplots(1, len(panels), figsize=figsize)
    vals: dict[tuple[str, Any, str], float | None] = {}
    rows = []
    for ax, (panel, xlabel, xs) in zip(np.atleast_1d(axes), panels, strict=True):
        pv: dict[tuple[Any, str], float | None] = {}
        for x in xs:
            for sy in SCALING_SYSTEMS:
                p = ctx.one(panel=panel, x=x, system=sy)
                v = None if p is None else ctx.value(p)
                vals[(panel, x, sy)] = pv[(x, sy)] = v
                rows.append({"panel": panel, "x": x, "system": sy, "latency_s": v})
        grouped_bars(ax, list(xs), SCALING_SYSTEMS, pv)
        ax.set_xlabel(xlabel)
        ax.set_title(f"({panel})", fontsize=10)
    np.atleast_1d(axes)[0].set_ylabel("Latency (s)")
    np.atleast_1d(axes)[0].legend(fontsize=8)
    ctx.save(fig)
    ctx.csv(rows, ["panel", "x", "system", "latency_s"])
    return vals
