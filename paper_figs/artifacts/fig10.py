"""Fig. 10: Helium's speedup over LangGraph on the synthetic prompts P1-P6 (MapRed,
Debate); verdicts on the maximum and where it is.
"""

from __future__ import annotations

import matplotlib.pyplot as plt

from experiments.paper import SYNTHETIC_CONFIGS, SYNTHETIC_WORKFLOWS
from experiments.paper_numbers import PAPER
from paper_figs.common import verdict_claim, verdict_effect
from paper_figs.context import DrawContext
from paper_figs.plotting import paper_point


def draw_fig10(ctx: DrawContext) -> None:
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    rows = []
    best: tuple[float, str, str] | None = None
    for wf in SYNTHETIC_WORKFLOWS:
        ys: list[float | None] = []
        for cfg in SYNTHETIC_CONFIGS:
            he, lg = (ctx.one(workflow=wf, config=cfg, system=s) for s in ("helium", "langgraph"))
            hv = None if he is None else ctx.value(he)
            lv = None if lg is None else ctx.value(lg)
            sp = lv / hv if hv and lv else None
            ys.append(sp)
            rows.append({"workflow": wf, "config": cfg, "helium_latency_s": hv,
                         "langgraph_latency_s": lv, "speedup": sp})
            if sp is not None and (best is None or sp > best[0]):
                best = (sp, wf, cfg)
        pts = [(i, y) for i, y in enumerate(ys) if y is not None]
        ax.plot([i for i, _ in pts], [y for _, y in pts], marker="o", label=wf)
    pw, pc = PAPER["fig10"]["at"]
    paper_point(ax, SYNTHETIC_CONFIGS.index(pc), PAPER["fig10"]["max_speedup"],
                f"paper: {PAPER['fig10']['max_speedup']}x ({pw}, {pc})")
    ax.axhline(1.0, color="gray", lw=0.8, ls="--")
    ax.set_xticks(range(len(SYNTHETIC_CONFIGS)), list(SYNTHETIC_CONFIGS))
    ax.set_ylabel("Speedup over LangGraph")
    ax.set_xlabel("Prompt configuration")
    ax.legend(fontsize=8)
    ctx.save(fig)
    ctx.csv(rows, ["workflow", "config", "helium_latency_s", "langgraph_latency_s", "speedup"])
    if best:
        ctx.section.row("max speedup over LangGraph", f"{best[0]:.2f}x ({best[1]}, {best[2]})",
                        f"{PAPER['fig10']['max_speedup']}x ({pw}, {pc})")
    ctx.section.verdicts.append(verdict_effect("max speedup over LangGraph",
                                               best[0] if best else None,
                                               PAPER["fig10"]["max_speedup"]))
    if best:
        ctx.section.verdicts.append(verdict_claim(
            f"the maximum is at ({pw}, {pc})", (best[1], best[2]) == (pw, pc),
            f"ours at ({best[1]}, {best[2]})"))
