"""Fig. 11: (a) planning time (optimizer, TRT, CAS) vs query processing, (b) scheduling
metadata, over Trading's branches; verdicts on planning time and metadata size.
"""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from experiments.paper import TRADING_BRANCHES
from experiments.paper_numbers import PAPER
from paper_figs.common import SYSTEM_COLORS, fmt, verdict_claim, verdict_value
from paper_figs.context import DrawContext
from paper_figs.plotting import paper_note


def draw_fig11(ctx: DrawContext) -> None:
    planner = ctx.one(part="planner")
    s = None if planner is None else ctx.summary(planner)
    br = [str(b) for b in TRADING_BRANCHES]
    rows = []
    fig, (ax_a, ax_b) = plt.subplots(1, 2, figsize=(10, 3.4))
    parts = {"QO": "optimizer_ms_median", "TRT": "trt_ms_median", "CAS": "cas_ms_median"}
    colors = {"QO": "#1f77b4", "TRT": "#ff7f0e", "CAS": "#2ca02c", "QP": "#bbbbbb"}
    bottoms = np.zeros(len(br))
    comp: dict[str, list[float | None]] = {}
    for name, key in parts.items():
        comp[name] = [None if s is None or b not in s["branches"] else
                      float(s["branches"][b][key]) for b in br]
    qp: list[float | None] = []
    for b in TRADING_BRANCHES:
        p = ctx.one(part="processing", branches=b)
        v = None if p is None else ctx.value(p, lambda x: float(x["makespan_s"]) * 1e3)
        qp.append(v)
    comp["QP"] = qp
    for name, ys in comp.items():
        h = np.array([0.0 if y is None else y for y in ys])
        ax_a.bar(range(len(br)), h, bottom=bottoms, color=colors[name], label=name)
        bottoms = bottoms + h
    for i, nb in enumerate(br):
        row: dict[str, Any] = {"branches": int(nb)}
        for name in comp:
            row[f"{name.lower()}_ms"] = comp[name][i]
        row["planning_ms"] = (None if s is None or nb not in s["branches"] else
                              s["branches"][nb]["planning_ms_median"])
        row["helium_metadata_bytes"] = (None if s is None or nb not in s["branches"] else
                                        s["branches"][nb]["metadata_bytes"])
        rows.append(row)
    ax_a.set_yscale("log")
    ax_a.set_ylim(bottom=0.1)
    ax_a.set_xticks(range(len(br)), br)
    ax_a.set_xlabel("Branches")
    ax_a.set_ylabel("Time (ms, log; stacked)")
    ax_a.set_title("(a) planning vs query processing", fontsize=10)
    ax_a.legend(fontsize=7, ncol=4)
    paper = PAPER["fig11"]
    paper_note(ax_a, f"paper: planning < {paper['planning_ms_max_at_16']:g} ms at 16 branches")
    meta = [None if r["helium_metadata_bytes"] is None else r["helium_metadata_bytes"] / 1024
            for r in rows]
    ax_b.bar([i for i, m in enumerate(meta) if m is not None], [m for m in meta if m is not None],
             color=SYSTEM_COLORS["helium"], label="Helium TRT + scheduler (ours)")
    ax_b.axhline(paper["helium_metadata_kib"], color="black", ls="--", lw=1,
                 label=f"paper: Helium {paper['helium_metadata_kib']:g} KiB")
    ax_b.axhline(paper["sglang_radix_mib"] * 1024, color="gray", ls=":", lw=1,
                 label=f"paper: SGLang RadixCache {paper['sglang_radix_mib']:g} MiB "
                       "(not modelled)")
    ax_b.set_yscale("log")
    ax_b.set_xticks(range(len(br)), br)
    ax_b.set_xlabel("Branches")
    ax_b.set_ylabel("Peak metadata (KiB, log)")
    ax_b.set_title("(b) scheduling metadata", fontsize=10)
    ax_b.legend(fontsize=7)
    ctx.save(fig)
    ctx.csv(rows, ["branches", "qo_ms", "trt_ms", "cas_ms", "qp_ms", "planning_ms",
                   "helium_metadata_bytes"])
    last = rows[-1]
    ctx.section.row("planning at 16 branches (ms)", last["planning_ms"],
                    f"< {paper['planning_ms_max_at_16']:g}")
    ctx.section.verdicts.append(verdict_claim(
        f"planning under {paper['planning_ms_max_at_16']:g} ms at 16 branches",
        None if last["planning_ms"] is None else
        last["planning_ms"] < paper["planning_ms_max_at_16"],
        f"ours {fmt(last['planning_ms'])} ms"))
    kib = None if last["helium_metadata_bytes"] is None else last["helium_metadata_bytes"] / 1024
    ctx.section.row("Helium metadata at 16 branches (KiB)", kib, paper["helium_metadata_kib"])
    ctx.section.row("SGLang RadixCache (MiB)", "not modelled", paper["sglang_radix_mib"])
    ctx.section.verdicts.append(verdict_value("Helium metadata at 16 branches", kib,
                                              paper["helium_metadata_kib"],
                                              tol=0.5, unit=" KiB"))
    if s is not None:
        ctx.section.row("TRT+CAS time ratio, batch x" + str(
            next(iter(s["branches"].values()))["scaling"]["batch"] // int(s["batch_size"])),
            s["batch_scaling_ratio"], "operator-level: ~flat")
    if last["qp_ms"] and last["planning_ms"] is not None:
        ctx.section.row("planning share of end-to-end at 16 branches",
                        f"{last['planning_ms'] / (last['planning_ms'] + last['qp_ms']):.3%}")
