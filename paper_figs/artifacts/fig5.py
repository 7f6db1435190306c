"""Fig. 5: normalized end-to-end latency of every system on the 7 primitive workloads;
verdict: Helium fastest on each (by a margin).
"""

from __future__ import annotations

import matplotlib.pyplot as plt

from experiments.paper import FIG5_SYSTEMS, WORKLOADS
from experiments.paper_numbers import PAPER
from paper_figs.common import HAIR_MARGIN, label, verdict_claim
from paper_figs.context import DrawContext
from paper_figs.plotting import grouped_bars, paper_note, workload_latencies


def draw_fig5(ctx: DrawContext) -> None:
    lat = workload_latencies(ctx, FIG5_SYSTEMS)
    norm: dict[tuple[str, str], float | None] = {}
    rows = []
    fastest_he = 0
    complete = 0
    losses: list[str] = []
    for wl in WORKLOADS:
        vals = {sy: lat.get((wl, sy)) for sy in FIG5_SYSTEMS}
        have = {sy: v for sy, v in vals.items() if v is not None}
        slowest = max(have.values()) if have else None
        for sy, v in vals.items():
            norm[(wl, sy)] = None if v is None or not slowest else v / slowest
            rows.append({"workload": wl, "system": sy, "latency_s": v,
                         "normalized_latency": norm[(wl, sy)]})
        if len(have) == len(FIG5_SYSTEMS):
            complete += 1
            best = min(have, key=have.__getitem__)
            runner_up = min(v for sy, v in have.items() if sy != best)
            by_a_hair = runner_up < have[best] * (1 + HAIR_MARGIN)
            fastest_he += best == "helium" and not by_a_hair
            if best != "helium":
                losses.append(f"{wl}: {label(best)} {have['helium'] / have[best] - 1:.1%} "
                              "faster than Helium")
            elif by_a_hair:
                losses.append(f"{wl}: Helium fastest by only {runner_up / have[best] - 1:.1%} "
                              f"(< {HAIR_MARGIN:.0%})")
            ctx.section.row(f"{wl}: fastest system", label(best), "Helium")
    fig, ax = plt.subplots(figsize=(11, 3.4))
    grouped_bars(ax, list(WORKLOADS), FIG5_SYSTEMS, norm)
    ax.set_ylabel("Normalized latency")
    ax.set_ylim(0, 1.15)
    ax.legend(ncol=6, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, 1.18))
    ax.tick_params(axis="x", labelsize=8)
    paper_fastest = PAPER["fig5"]["helium_fastest_workloads"]
    avg = [PAPER["table2"][sy][0] for sy in FIG5_SYSTEMS if sy != "helium"]
    paper_note(ax, f"paper: Helium fastest on all {paper_fastest} workloads\n(Table 2: baselines "
                   f"{min(avg):.2f}–{max(avg):.2f}x slower on average)")
    ctx.save(fig)
    ctx.csv(rows, ["workload", "system", "latency_s", "normalized_latency"])
    ctx.section.row("workloads where Helium is fastest", f"{fastest_he}/{complete}",
                    f"{paper_fastest}/{len(WORKLOADS)}")
    ctx.section.verdicts.append(verdict_claim(
        f"Helium fastest on every workload (by >= {HAIR_MARGIN:.0%})",
        fastest_he == complete if complete else None,
        f"fastest on {fastest_he} of {complete} complete workloads"
        + (f" ({'; '.join(losses)})" if losses else "")))
