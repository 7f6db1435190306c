"""Table 3: the ablations' latencies and deltas to full Helium on Trading, beside the
paper's; verdicts: every component helps, their ranking, full latency.
"""

from __future__ import annotations

from experiments.paper import ABLATIONS
from experiments.paper_numbers import PAPER
from paper_figs.common import fmt, indicators, label, verdict_claim, verdict_ranking, verdict_value
from paper_figs.context import DrawContext

# Latency differences below this (percent) count as no difference (ablations).
NOISE_PCT = 1.0


def draw_table3(ctx: DrawContext) -> None:
    paper = PAPER["table3"]
    lat = {a: (ctx.value(p) if (p := ctx.one(system=a)) else None) for a in ABLATIONS}
    full = lat.get("helium")
    rows_csv, rows_md = [], []
    deltas: dict[str, float] = {}
    for a in ABLATIONS:
        v = lat.get(a)
        d = None if v is None or not full else 100 * (full - v) / full
        pd = 100 * (paper["helium"] - paper[a]) / paper["helium"]
        if d is not None and a != "helium":
            deltas[a] = d
        name = "Full" if a == "helium" else label(a)
        rows_csv.append({"variant": name, "system": a, "latency_s": v, "delta_pct": d,
                         "paper_latency_s": paper[a], "paper_delta_pct": round(pd, 2)})
        rows_md.append([name, fmt(v), "—" if a == "helium" else fmt(d), fmt(paper[a]),
                        "—" if a == "helium" else f"{pd:.2f}"])
    ctx.md(["variant", "latency (s)", "delta (%)", "paper latency (s)", "paper delta (%)"],
           rows_md, ["delta = (full - variant) / full: negative = the component helps."])
    ctx.csv(rows_csv, ["variant", "system", "latency_s", "delta_pct", "paper_latency_s",
                       "paper_delta_pct"])
    ctx.section.row("Full Helium latency (s)", full, paper["helium"])
    for a, d in deltas.items():
        ctx.section.row(f"{label(a)} delta (%)", d,
                        round(100 * (paper["helium"] - paper[a]) / paper["helium"], 2))
    full_p = ctx.one(system="helium")
    for a in deltas:
        pa = ctx.one(system=a)
        if full_p is not None and pa is not None:
            ctx.section.notes.append(f"{label(a)}: " + indicators(
                ctx.results.summary(full_p.run), ctx.results.summary(pa.run), "full",
                label(a)))
    helps = [a for a, d in deltas.items() if d < -NOISE_PCT]
    ctx.section.verdicts.append(verdict_claim(
        f"every component reduces latency (by > {NOISE_PCT:g}%)",
        len(helps) == len(deltas) if deltas else None,
        f"{len(helps)}/{len(deltas)} ablations slower than full"
        + (f"; not helping: {', '.join(label(a) for a in deltas if a not in helps)}"
           if len(helps) < len(deltas) else "")))
    ours_order = sorted(deltas, key=deltas.__getitem__)
    paper_order = sorted(ABLATIONS[1:], key=lambda a: paper["helium"] - paper[a])
    ctx.section.verdicts.append(verdict_ranking("component impact (largest first)",
                                                ours_order, paper_order))
    ctx.section.verdicts.append(verdict_value("full Helium latency", full, paper["helium"],
                                              unit=" s"))
