"""Fig. 12: execution dynamics on Trading (prompt cache off), Helium vs LangGraph:
batched requests, effective batched tokens, per-request latency CDF.
"""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from experiments.paper_numbers import PAPER
from paper_figs.common import SYSTEM_COLORS, indicators, label, verdict_effect, with_indicators
from paper_figs.context import DrawContext
from paper_figs.plotting import paper_note


def _running_series(ts: list[dict[str, float]], grid: np.ndarray) -> np.ndarray:
    """Running requests summed over workers at each grid time (a row covers [t, t+dt))."""
    total = np.zeros_like(grid)
    for w in sorted({r["worker"] for r in ts}):
        rows = [r for r in ts if r["worker"] == w]
        t = np.array([r["t"] for r in rows])
        end = t + np.array([r["dt"] for r in rows])
        run = np.array([r["running"] for r in rows])
        idx = np.searchsorted(t, grid, side="right") - 1
        ok = (idx >= 0) & (grid < end[np.clip(idx, 0, None)])
        total += np.where(ok, run[np.clip(idx, 0, None)], 0.0)
    return total


def _effective_tokens(calls: list[dict[str, Any]], grid: np.ndarray) -> np.ndarray:
    """Context tokens of the running requests (prompt + generated so far, shared prefixes
    counted per request) at each grid time: the paper's effective batched tokens."""
    total = np.zeros_like(grid)
    for c in calls:
        lo, hi = c["start_t"], c["finish_t"]
        m = (grid >= lo) & (grid < hi)
        if not m.any():
            continue
        ft = c["first_token_t"]
        frac = np.clip((grid[m] - ft) / max(hi - ft, 1e-9), 0.0, 1.0)
        total[m] += c["prompt_tokens"] + frac * c["output_tokens"]
    return total


def draw_fig12(ctx: DrawContext) -> None:
    data: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = {}
    for sy in ("helium", "langgraph"):
        p = ctx.one(system=sy)
        if p is None or ctx.summary(p) is None:
            continue
        ts, calls = ctx.results.timeseries(p.run), ctx.results.calls(p.run)
        assert ts is not None and calls is not None
        end = max((c["finish_t"] for c in calls), default=0.0)
        grid = np.linspace(0.0, end, 2000, endpoint=False)
        lat = np.sort(np.array([c["finish_t"] - c["submit_t"] for c in calls]))
        data[sy] = (grid, _running_series(ts, grid), _effective_tokens(calls, grid), lat)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.2))
    rows: list[dict[str, Any]] = []
    stats: dict[str, dict[str, float]] = {}
    for sy, (grid, req, tok, lat) in data.items():
        color = SYSTEM_COLORS[sy]
        axes[0].plot(grid, req, color=color, lw=0.8, label=label(sy))
        axes[1].plot(grid, tok / 1e3, color=color, lw=0.8, label=label(sy))
        cdf = np.arange(1, len(lat) + 1) / len(lat)
        axes[2].plot(lat, cdf, color=color, label=label(sy))
        stats[sy] = {"mean_req": float(req.mean()), "peak_req": float(req.max()),
                     "mean_tok": float(tok.mean()), "peak_tok": float(tok.max()),
                     "p50": float(np.percentile(lat, 50)), "p95": float(np.percentile(lat, 95))}
        step = max(1, len(grid) // 400)
        rows += [{"series": "timeline", "system": sy, "t_s": round(float(g), 4),
                  "batched_requests": float(r), "effective_batched_tokens": round(float(k), 1)}
                 for g, r, k in zip(grid[::step], req[::step], tok[::step], strict=True)]
        q = np.linspace(0, 1, 101)
        rows += [{"series": "latency_cdf", "system": sy, "latency_s": float(np.quantile(lat, f)),
                  "cdf": round(float(f), 2)} for f in q]
    axes[0].set_title("(a) batched requests", fontsize=10)
    axes[0].set_xlabel("Time (s)")
    axes[1].set_title("(b) effective batched tokens (K)", fontsize=10)
    axes[1].set_xlabel("Time (s)")
    axes[2].set_title("(c) per-request latency CDF", fontsize=10)
    axes[2].set_xlabel("Latency (s)")
    pp = PAPER["fig12"]
    for sy, ls in (("langgraph", "--"), ("helium", ":")):
        for k in ("p50_s", "p95_s"):
            axes[2].axvline(pp[k][sy], color=SYSTEM_COLORS[sy], ls=ls, lw=0.8)
    p50, p95 = pp["p50_s"], pp["p95_s"]
    paper_note(axes[2], f"paper (dotted/dashed): p50 {p50['langgraph']}→{p50['helium']} s,\n"
                        f"p95 {p95['langgraph']}→{p95['helium']} s")
    paper_note(axes[0], f"paper: up to ≈{pp['peak_requests']} requests,\nHelium x"
                        f"{pp['mean_requests_ratio']} on average")
    peak_tokens = f"≈{pp['peak_effective_tokens'] / 1e6:.1f}M"
    paper_note(axes[1], f"paper: {peak_tokens} peak; Helium x{pp['peak_tokens_ratio']} peak,\n"
                        f"x{pp['mean_tokens_ratio']} mean")
    for ax in axes:
        ax.legend(fontsize=7, loc="lower right")
    ctx.save(fig)
    ctx.csv(rows, ["series", "system", "t_s", "batched_requests", "effective_batched_tokens",
                   "latency_s", "cdf"])
    if len(stats) < 2:
        ctx.section.verdicts.append("NO DATA: needs both runs")
        return
    he, lg = stats["helium"], stats["langgraph"]
    hp, lp = ctx.one(system="helium"), ctx.one(system="langgraph")
    ind = "" if hp is None or lp is None else indicators(
        ctx.results.summary(hp.run), ctx.results.summary(lp.run), "Helium", "LangGraph")

    for what, key, pkey in (("mean batched requests", "mean_req", "mean_requests_ratio"),
                            ("peak effective batched tokens", "peak_tok", "peak_tokens_ratio"),
                            ("mean effective batched tokens", "mean_tok", "mean_tokens_ratio")):
        r = he[key] / lg[key] if lg[key] else None
        ctx.section.ratio_row(f"Helium / LangGraph {what}", r, pp[pkey])
        ctx.section.verdicts.append(with_indicators(
            verdict_effect(f"Helium/LangGraph {what}", r, pp[pkey]), ind))
    for k, pk in (("p50", "p50_s"), ("p95", "p95_s")):
        ctx.section.row(f"{k} latency LangGraph → Helium (s)", f"{lg[k]:.1f} → {he[k]:.1f}",
                        f"{pp[pk]['langgraph']} → {pp[pk]['helium']}")
        ours = lg[k] / he[k] if he[k] else None
        paper = pp[pk]["langgraph"] / pp[pk]["helium"]
        ctx.section.verdicts.append(with_indicators(verdict_effect(
            f"{k} latency reduction (LangGraph/Helium)", ours, round(paper, 3)), ind))
    ctx.section.row("peak batched requests (Helium, LangGraph)",
                    f"{he['peak_req']:.0f}, {lg['peak_req']:.0f}", f"≈{pp['peak_requests']}")
    ctx.section.row("peak effective batched tokens (Helium, LangGraph)",
                    f"{he['peak_tok']:.3g}, {lg['peak_tok']:.3g}", peak_tokens)
