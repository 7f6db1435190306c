"""Fig. 9: Helium vs LangGraph on Trading over models and KV capacities; verdicts: both
degrade as KV shrinks, Helium less.
"""

from __future__ import annotations

from experiments.paper import KV_CAPACITIES, MODELS, SCALING_SYSTEMS
from paper_figs.common import CLAIM_MARGIN, label, verdict_claim
from paper_figs.context import DrawContext
from paper_figs.plotting import pair_panels


def draw_fig9(ctx: DrawContext) -> None:
    kv = ["full" if k is None else k for k in KV_CAPACITIES]
    panels = [("a", "Model", MODELS), ("b", "KV capacity (tokens)", kv)]
    vals = pair_panels(ctx, panels, (11, 3.2))
    slow: dict[str, float] = {}
    for sy in SCALING_SYSTEMS:
        small, full = vals.get(("b", 65536, sy)), vals.get(("b", "full", sy))
        if small is not None and full is not None:
            slow[sy] = small / full
            ctx.section.row(f"{label(sy)} latency at 2^16 KV / full KV", slow[sy], "> 1")
    both = len(slow) == 2
    ctx.section.verdicts.append(verdict_claim(
        "both systems degrade as KV shrinks", all(v > 1.0 for v in slow.values()) if both
        else None, ", ".join(f"{label(s)} x{v:.3f}" for s, v in slow.items()) or "no data"))
    ctx.section.verdicts.append(verdict_claim(
        f"Helium degrades less than LangGraph (slowdown - 1 smaller by > {CLAIM_MARGIN:.0%})",
        (slow["helium"] - 1 < (1 - CLAIM_MARGIN) * (slow["langgraph"] - 1)) if both else None,
        ", ".join(f"{label(s)} x{v:.3f}" for s, v in slow.items()) or "no data"))
    for m in MODELS:
        he, lg = vals.get(("a", m, "helium")), vals.get(("a", m, "langgraph"))
        if he and lg:
            ctx.section.row(f"{m}: LangGraph / Helium latency", lg / he)
