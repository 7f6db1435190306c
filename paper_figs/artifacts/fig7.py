"""Fig. 7: Trading latency vs batch size for every system on Qwen3-8B and Qwen3-14B;
verdicts on Helium's "up to" speedups and its default-point latency.
"""

from __future__ import annotations

import matplotlib.pyplot as plt

from experiments.paper import BASELINES, TRADING_BATCHES
from experiments.paper_numbers import PAPER
from paper_figs.common import (
    SYSTEM_COLORS,
    indicators,
    label,
    verdict_effect,
    verdict_value,
    with_indicators,
)
from paper_figs.context import DrawContext
from paper_figs.plotting import paper_note, paper_point


def draw_fig7(ctx: DrawContext) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6), sharey=False)
    rows = []
    speedup: dict[str, float] = {}
    for ax, model, tag in zip(axes, ("qwen3-8b", "qwen3-14b"), ("a", "b"), strict=True):
        xs = list(TRADING_BATCHES)
        for sy in BASELINES:
            ys: list[float | None] = []
            for b in xs:
                p = ctx.one(model=model, system=sy, batch=b)
                v = None if p is None else ctx.value(p)
                ys.append(v)
                if p is not None:
                    rows.append({"model": model, "system": sy, "batch": b, "latency_s": v})
            pts = [(i, y) for i, y in enumerate(ys) if y is not None]
            if pts:
                ax.plot([i for i, _ in pts], [y for _, y in pts], marker="o", ms=4,
                        label=label(sy), color=SYSTEM_COLORS.get(sy))
        for b in xs:
            h = ctx.one(model=model, system="helium", batch=b)
            hv = None if h is None else ctx.results.summary(h.run)
            for sy in BASELINES[:-1]:
                p = ctx.one(model=model, system=sy, batch=b)
                sv = None if p is None else ctx.results.summary(p.run)
                if hv and sv:
                    speedup[sy] = max(speedup.get(sy, 0.0), ctx.latency(sv) / ctx.latency(hv))
        ax.set_xticks(range(len(xs)), [str(b) for b in xs])
        ax.set_xlim(-0.3, len(xs) - 0.7)
        ax.set_yscale("log")
        ax.set_xlabel("Batch size")
        ax.set_ylabel("Latency (s)")
        ax.set_title(f"({tag}) {model}", fontsize=10)
        if model == "qwen3-8b":
            paper_point(ax, xs.index(16), PAPER["fig7"]["default_helium_s"],
                        f"paper: Helium ≈{PAPER['fig7']['default_helium_s']:g} s")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, ncol=8, fontsize=8, loc="upper center",
               bbox_to_anchor=(0.5, 1.08))
    fig.subplots_adjust(wspace=0.25)
    up = PAPER["fig7"]["up_to_speedup"]
    paper_note(axes[1], "paper, Helium up to:\n" + "\n".join(
        f"{v}x vs {label(s)}" for s, v in up.items()))
    ctx.save(fig)
    ctx.csv(rows, ["model", "system", "batch", "latency_s"])
    he16 = ctx.one(model="qwen3-8b", system="helium", batch=16)
    for sy, v in up.items():
        ours = speedup.get(sy)
        ctx.section.ratio_row(f"Helium up-to speedup vs {label(sy)}", ours, v)
        other = ctx.one(model="qwen3-8b", system=sy, batch=16)
        ind = "" if he16 is None or other is None else indicators(
            ctx.results.summary(he16.run), ctx.results.summary(other.run), "Helium",
            f"{label(sy)} (8B, batch 16)")
        ctx.section.verdicts.append(with_indicators(
            verdict_effect(f"up-to speedup vs {label(sy)}", ours, v), ind))
    d = ctx.one(model="qwen3-8b", system="helium", batch=16)
    dv = None if d is None else ctx.value(d)
    ctx.section.row("Helium latency, default point (8B, batch 16), s", dv,
                    PAPER["fig7"]["default_helium_s"])
    ctx.section.verdicts.append(verdict_value("Helium default-point latency", dv,
                                              PAPER["fig7"]["default_helium_s"], unit=" s"))
