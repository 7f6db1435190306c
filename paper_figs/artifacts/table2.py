"""Table 2: latency relative to Helium (avg / min / max over the primitive workloads) per
baseline, beside the paper's; verdicts on each average and on the ranking.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from experiments.paper import BASELINES, WORKLOADS
from experiments.paper_numbers import PAPER
from paper_figs.common import (
    fmt,
    indicators,
    label,
    pooled,
    verdict_effect,
    verdict_ranking,
    with_indicators,
)
from paper_figs.context import DrawContext
from paper_figs.plotting import workload_latencies


def draw_table2(ctx: DrawContext) -> None:
    lat = workload_latencies(ctx, BASELINES)
    rows_csv, rows_md = [], []
    avgs: dict[str, float] = {}
    paper = PAPER["table2"]
    for sy in BASELINES:
        if sy == "helium":
            continue
        ratios = [v / h for wl in WORKLOADS
                  if (v := lat.get((wl, sy))) is not None and (h := lat.get((wl, "helium")))]
        stats = ((float(np.mean(ratios)), min(ratios), max(ratios)) if ratios
                 else (None, None, None))
        if ratios:
            avgs[sy] = float(np.mean(ratios))
        for name, ours, pap in zip(("avg", "min", "max"), stats, paper[sy], strict=True):
            rows_csv.append({"system": sy, "stat": name, "ours": ours, "paper": pap,
                             "workloads": len(ratios)})
        rows_md.append([label(sy), *[fmt(x) for x in stats], *[fmt(x) for x in paper[sy]],
                        str(len(ratios))])
        ctx.section.ratio_row(f"{label(sy)} avg ratio to Helium", stats[0], paper[sy][0])
        both = [wl for wl in WORKLOADS if lat.get((wl, sy)) and lat.get((wl, "helium"))]
        ind = indicators(pooled(_summaries(ctx, both, "helium")),
                         pooled(_summaries(ctx, both, sy)), "Helium", f"{label(sy)} (pooled)")
        ctx.section.verdicts.append(with_indicators(verdict_effect(
            f"{label(sy)} avg latency/Helium", stats[0], paper[sy][0]), ind))
    ctx.md(["system", "avg", "min", "max", "paper avg", "paper min", "paper max", "workloads"],
           rows_md, ["Latency relative to Helium (ratio of end-to-end latencies), over the "
                     "workloads where both ran."])
    ctx.csv(rows_csv, ["system", "stat", "ours", "paper", "workloads"])
    ours_order = sorted(avgs, key=avgs.__getitem__, reverse=True)
    paper_order = sorted((s for s in paper), key=lambda s: paper[s][0], reverse=True)
    ctx.section.verdicts.append(verdict_ranking("slowdown vs Helium (slowest first)",
                                                ours_order, paper_order))


def _summaries(ctx: DrawContext, workloads: Sequence[str], system: str) -> list[dict[str, Any]]:
    out = []
    for wl in workloads:
        p = ctx.one(workload=wl, system=system)
        s = None if p is None else ctx.results.summary(p.run)
        if s is not None:
            out.append(s)
    return out
