"""Table 7: prefix-cache hit rate of every system on Trading (Qwen3-8B, Qwen3-14B);
verdicts on Helium's 8B hit rate and on its edge shrinking on 14B.
"""

from __future__ import annotations

from experiments.paper import BASELINES
from experiments.paper_numbers import PAPER
from paper_figs.common import fmt, indicators, label, verdict_claim, verdict_points, with_indicators
from paper_figs.context import DrawContext


def draw_table7(ctx: DrawContext) -> None:
    rows_csv, rows_md = [], []
    hit: dict[tuple[str, str], float | None] = {}
    for sy in BASELINES:
        md_row = [label(sy)]
        for m in ("qwen3-8b", "qwen3-14b"):
            p = ctx.one(model=m, system=sy)
            v = None if p is None else ctx.value(p, lambda s: 100 * s["prefix_hit_rate"])
            hit[(m, sy)] = v
            rows_csv.append({"model": m, "system": sy, "prefix_hit_rate_pct": v})
            md_row.append(fmt(v))
        md_row.append(f"{PAPER['table7']['helium_qwen3-8b_pct']:g}" if sy == "helium" else "—")
        rows_md.append(md_row)
    ctx.md(["system", "Qwen3-8B hit %", "Qwen3-14B hit %", "paper Qwen3-8B"], rows_md,
           ["Prefix-cache hit rate = cached prompt tokens / prompt tokens of the measured "
            "batch (Trading day 2)."])
    ctx.csv(rows_csv, ["model", "system", "prefix_hit_rate_pct"])
    he8 = hit.get(("qwen3-8b", "helium"))
    ctx.section.row("Helium hit rate, Qwen3-8B (%)", he8, PAPER["table7"]["helium_qwen3-8b_pct"])
    others8 = {sy: v for (m, sy), v in hit.items()
               if m == "qwen3-8b" and sy != "helium" and v is not None}
    best8 = max(others8, key=others8.__getitem__, default=None)
    hp, bp = ctx.one(model="qwen3-8b", system="helium"), (
        None if best8 is None else ctx.one(model="qwen3-8b", system=best8))
    ind = "" if hp is None or bp is None or best8 is None else indicators(
        ctx.results.summary(hp.run), ctx.results.summary(bp.run), "Helium", label(best8))
    ctx.section.verdicts.append(with_indicators(verdict_points(
        "Helium hit rate on Qwen3-8B", he8, PAPER["table7"]["helium_qwen3-8b_pct"]), ind))
    edges = {}
    for m in ("qwen3-8b", "qwen3-14b"):
        others = [v for (mm, sy), v in hit.items() if mm == m and sy != "helium" and v is not None]
        h = hit.get((m, "helium"))
        if h is not None and others:
            edges[m] = h - max(others)
            ctx.section.row(f"Helium edge over best baseline, {m} (points)", edges[m])
    if "qwen3-8b" in edges:
        ctx.section.verdicts.append(verdict_claim(
            "Helium has the highest hit rate on Qwen3-8B", edges["qwen3-8b"] > 0,
            f"edge {edges['qwen3-8b']:+.1f} points"))
    if len(edges) == 2:
        ctx.section.verdicts.append(verdict_claim(
            "memory pressure on Qwen3-14B erases most of Helium's edge",
            edges["qwen3-14b"] < 0.5 * edges["qwen3-8b"] if edges["qwen3-8b"] > 0 else None,
            f"edge {edges['qwen3-8b']:+.1f} points on 8B, {edges['qwen3-14b']:+.1f} on 14B"))
