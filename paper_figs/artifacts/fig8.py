"""Fig. 8: Helium vs LangGraph on Trading over batch, branches, rounds and workers;
verdicts: Helium faster everywhere, its advantage widening with batch and rounds.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from experiments.paper import TRADING_BRANCHES, TRADING_ROUNDS, TRADING_WORKERS
from paper_figs.common import CLAIM_MARGIN, HAIR_MARGIN, verdict_claim
from paper_figs.context import DrawContext
from paper_figs.plotting import pair_panels


def _advantage(vals: dict[tuple[str, Any, str], float | None], panel: str,
               xs: Sequence[Any]) -> list[tuple[Any, float]]:
    out = []
    for x in xs:
        he, lg = vals.get((panel, x, "helium")), vals.get((panel, x, "langgraph"))
        if he is not None and lg is not None:
            out.append((x, lg - he))
    return out


def draw_fig8(ctx: DrawContext) -> None:
    batches = sorted({p.labels["x"] for p in ctx.artifact.select(panel="a")})
    panels = [("a", "Batch size", batches), ("b", "Branches", TRADING_BRANCHES),
              ("c", "Debate rounds", TRADING_ROUNDS), ("d", "Workers", TRADING_WORKERS)]
    vals = pair_panels(ctx, panels, (13, 3.2))
    wins = total = 0
    for panel, _, xs in panels:
        for x in xs:
            he, lg = vals.get((panel, x, "helium")), vals.get((panel, x, "langgraph"))
            if he is not None and lg is not None:
                total += 1
                wins += he * (1 + HAIR_MARGIN) <= lg
    ctx.section.row("points where Helium is faster", f"{wins}/{total}", "all")
    ctx.section.verdicts.append(verdict_claim(f"Helium faster than LangGraph at every point "
                                              f"(by >= {HAIR_MARGIN:.0%})",
                                              wins == total if total else None,
                                              f"{wins}/{total} points"))
    for panel, name in (("a", "batch size"), ("c", "debate rounds")):
        xs = next(p[2] for p in panels if p[0] == panel)
        adv = _advantage(vals, panel, xs)
        ctx.section.row(f"absolute advantage (LangGraph - Helium, s) vs {name}",
                        ", ".join(f"{x}: {a:.1f}" for x, a in adv), "widens")
        last_he = vals.get((panel, xs[-1], "helium"))
        grows = (None if len(adv) < 2 or last_he is None else
                 adv[-1][1] > adv[0][1] + CLAIM_MARGIN * abs(adv[0][1])
                 and adv[-1][1] - adv[0][1] > HAIR_MARGIN * last_he)
        ctx.section.verdicts.append(verdict_claim(
            f"Helium's absolute advantage widens with {name} (by > {CLAIM_MARGIN:.0%} of it "
            f"and > {HAIR_MARGIN:.0%} of Helium's latency)", grows,
            f"advantage {adv[0][1]:.1f} s at {adv[0][0]} → {adv[-1][1]:.1f} s at {adv[-1][0]}"
            if len(adv) >= 2 else "too few points"))
