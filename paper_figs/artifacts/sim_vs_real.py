"""sim_vs_real (ours): the simulator against real vLLM engines, read from a
`validate_sim` run folder (never launched by paper_figs).
"""

from __future__ import annotations

import json
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from paper_figs.common import verdict_claim
from paper_figs.context import DrawContext


def draw_sim_vs_real(ctx: DrawContext) -> None:
    summary = None
    if ctx.validation is not None:
        try:
            summary = json.loads((ctx.validation / "summary.json").read_text())
        except (OSError, ValueError) as e:
            ctx.section.notes.append(f"unreadable validation results in {ctx.validation}: {e}")
        if summary is not None and summary.get("status", "ok") != "ok":
            ctx.section.notes.append(f"validation run in {ctx.validation} failed: "
                                     f"{summary.get('error')}")
            summary = None
    cols = ["system", "workflow", "real_makespan_s", "real_makespan_spread", "sim_makespan_s",
            "makespan_rel_err",
            "real_cached_tokens", "real_cached_tokens_spread", "sim_cached_tokens",
            "cached_tokens_rel_err",
            "cached_tokens_rel_err_real_outputs", "real_mean_batch", "sim_mean_batch",
            "mean_batch_rel_err", "real_steps", "sim_steps", "step_cost_ratio",
            "real_busy_share", "sim_busy_share", "real_client_cpu_ms_per_call",
            "sim_client_cpu_ms_per_call", "real_api_server_cpu_ms_per_call",
            "real_engine_threads", "sim_run_inputs_makespan_s",
            "sim_run_inputs_makespan_rel_err"]
    if not summary or not summary.get("workflows"):
        fig, ax = plt.subplots(figsize=(6, 2.5))
        ax.axis("off")
        ax.text(0.5, 0.5, "no validation results:\nrun `python -m helium_lab.run "
                "+experiment=validate_sim`", ha="center", va="center", fontsize=11)
        ctx.save(fig)
        ctx.csv([], cols)
        ctx.section.verdicts.append("NO DATA: no validation results: run `python -m "
                                    "helium_lab.run +experiment=validate_sim` (needs vLLM)")
        return
    systems = summary.get("systems") or {summary.get("system", "?"):
                                         {"workflows": summary["workflows"]}}
    rows = [_row(name, wf, r) for name, per in systems.items()
            for wf, r in per["workflows"].items()]
    targets = summary.get("targets") or {}
    fig, (ax_a, ax_b) = plt.subplots(1, 2, figsize=(max(11, 0.8 * len(rows) + 4), 3.6))
    names = [f"{r['system']} · {r['workflow']}" if len(systems) > 1 else r["workflow"]
             for r in rows]
    x = np.arange(len(names))
    bars = [("real_makespan_s", "real vLLM", "#444444"), ("sim_makespan_s", "simulator", "#d62728")]
    if any(r["sim_run_inputs_makespan_s"] is not None for r in rows):
        bars.append(("sim_run_inputs_makespan_s", "simulator, the real runs' CPU inputs",
                     "#ff9896"))
    width = 0.8 / len(bars)
    for i, (key, name, color) in enumerate(bars):
        ax_a.bar(x + (i - (len(bars) - 1) / 2) * width, [r[key] or 0.0 for r in rows], width,
                 label=name, color=color)
    ax_a.set_xticks(x, names, rotation=35, ha="right", fontsize=7)
    ax_a.set_ylabel("Makespan (s)")
    ax_a.set_title(f"(a) makespan ({summary.get('model')}, {summary.get('hardware')})",
                   fontsize=10)
    ax_a.legend(fontsize=8)
    for off, key, name, color in (
            (-0.3, "makespan_rel_err", "makespan", "#1f77b4"),
            (-0.1, "cached_tokens_rel_err", "cached tokens", "#2ca02c"),
            (0.1, "cached_tokens_rel_err_real_outputs", "cached tokens, real outputs replayed",
             "#98df8a"),
            (0.3, "mean_batch_rel_err", "mean batch", "#9467bd")):
        if all(r[key] is None for r in rows):
            continue  # older validation runs have no replay
        ax_b.bar(x + off, [100 * (r[key] or 0.0) for r in rows], 0.2, label=name, color=color)
        if key in targets:
            ax_b.axhline(100 * targets[key], color=color, ls="--", lw=0.8,
                         label=f"target {name} {100 * targets[key]:g}%")
    ax_b.set_xticks(x, names, rotation=35, ha="right", fontsize=7)
    ax_b.set_ylabel("|sim − real| / real (%)")
    ax_b.set_title("(b) relative error", fontsize=10)
    ax_b.legend(fontsize=7)
    ctx.save(fig)
    ctx.csv(rows, cols)
    ctx.section.notes.append(f"validation results read from {ctx.validation} (made outside "
                             "paper_figs on real engines; not version-checked)")
    stepped = [r for r in rows if r["real_steps"] and r["sim_steps"]]
    if stepped:  # exact counts (vLLM's tokens-per-step histogram), not samples
        same = [r for r in stepped if abs(r["real_steps"] / r["sim_steps"] - 1) <= 0.1]
        more = [f"{r['system']} {r['workflow']} {r['real_steps'] / r['sim_steps']:.1f}x"
                for r in stepped if r["real_steps"] > 1.5 * r["sim_steps"]]
        ctx.section.notes.append(
            f"engine steps, real vs simulated: within 10% on {len(same)}/{len(stepped)} "
            "workflows (the same tokens in the same number of steps: the engine model holds "
            "for the arrivals it is given)" + (f"; the real engine took more than 1.5x the "
                                               f"steps on {', '.join(more)} (its requests "
                                               "arrived spread out: smaller batches)"
                                               if more else ""))
    again = [r for r in rows if r["sim_run_inputs_makespan_rel_err"] is not None]
    if again:  # the client programs simulated with the CPU their real runs measured
        limit = targets.get("makespan_rel_err", 0.15)
        n_ok = sum(r["sim_run_inputs_makespan_rel_err"] <= limit for r in again)
        ctx.section.notes.append(
            f"client programs simulated again with the CPU inputs their real runs measured "
            f"(client CPU per call; engine weight 1 + engine core CPU / worker CPU): makespan "
            f"error within {100 * limit:g}% on {n_ok}/{len(again)} workflows ("
            + ", ".join(f"{r['system']} {r['workflow']} {100 * r['makespan_rel_err']:.1f}% -> "
                        f"{100 * r['sim_run_inputs_makespan_rel_err']:.1f}%" for r in again)
            + "): the rest is the configured CPU costs' transfer to this host")
    varied = [r for r in rows if r["real_cached_tokens_spread"]]
    if varied:  # a client program's hits follow HTTP timing: the repeats differ
        inside = [r for r in varied if r["sim_cached_tokens"] is not None
                  and r["_cached_lo"] <= r["sim_cached_tokens"] <= r["_cached_hi"]]
        ctx.section.notes.append(
            f"real cached tokens differ across repeats on {len(varied)} workflows (spread "
            f"max/min - 1: " + ", ".join(f"{r['system']} {r['workflow']} "
                                         f"{100 * r['real_cached_tokens_spread']:.1f}%"
                                         for r in varied)
            + f"); the simulated count lies within the repeats' range on {len(inside)} of "
            "them; the error is against the repeat of median makespan")
    ratios = [r["step_cost_ratio"] for r in rows if r["step_cost_ratio"] is not None]
    if ratios:  # the cost table alone, on the real runs' own batches
        ctx.section.notes.append(
            f"cost table over the real runs' own engine steps (in-process engines; the "
            f"table's time / the measured time): {min(ratios):.3f}-{max(ratios):.3f} on "
            f"{len(ratios)} workflows")
    for workflow, o in (summary.get("orderings") or {}).items():
        ctx.section.verdicts.append(verdict_claim(
            f"{workflow}: systems in the same makespan order in simulation and reality",
            bool(o.get("same")), f"real {' < '.join(o.get('real', []))}; sim "
            f"{' < '.join(o.get('sim', []))}"))
    for key in ("makespan_rel_err", "cached_tokens_rel_err",
                "cached_tokens_rel_err_real_outputs", "mean_batch_rel_err"):
        errs = [r[key] for r in rows if r[key] is not None]
        if not errs:
            continue
        worst = max(errs)
        ctx.section.row(f"max {key} (%)", 100 * worst,
                        f"target {100 * targets[key]:g}" if key in targets else "—")
        if key in targets:
            n_ok = sum(e <= targets[key] for e in errs)
            ctx.section.verdicts.append(verdict_claim(
                f"{key} within the {100 * targets[key]:g}% target", n_ok == len(errs),
                f"{n_ok}/{len(errs)} workflows; worst {100 * worst:.1f}%"))


def _row(system: str, workflow: str, r: dict[str, Any]) -> dict[str, Any]:
    """One CSV row (the `_cached_*` keys, the real repeats' range, stay out of the CSV)."""
    again = r.get("sim_run_inputs") or {}
    cached_runs = r.get("real_cached_tokens_runs") or []
    lo, hi = (min(cached_runs), max(cached_runs)) if cached_runs else (None, None)
    return {"system": system, "workflow": workflow,
            "real_cached_tokens_spread": round(hi / lo - 1, 4) if lo else None,
            "_cached_lo": lo, "_cached_hi": hi,
            "real_makespan_s": r.get("real_makespan_s"),
            "real_makespan_spread": r.get("real_makespan_spread"),
            "sim_makespan_s": r.get("sim_makespan_s"),
            "makespan_rel_err": r.get("makespan_rel_err"),
            "real_cached_tokens": (r.get("real") or {}).get("cached_tokens"),
            "sim_cached_tokens": (r.get("sim") or {}).get("cached_tokens"),
            "cached_tokens_rel_err": r.get("cached_tokens_rel_err"),
            "cached_tokens_rel_err_real_outputs": r.get("cached_tokens_rel_err_real_outputs"),
            "real_mean_batch": r.get("real_mean_batch"), "sim_mean_batch": r.get("sim_mean_batch"),
            "mean_batch_rel_err": r.get("mean_batch_rel_err"),
            "real_steps": r.get("real_steps"), "sim_steps": r.get("sim_steps"),
            "step_cost_ratio": r.get("step_cost_ratio"),
            "real_busy_share": r.get("real_busy_share"),
            "sim_busy_share": r.get("sim_busy_share"),
            "real_client_cpu_ms_per_call": r.get("real_client_cpu_ms_per_call"),
            "sim_client_cpu_ms_per_call": r.get("sim_client_cpu_ms_per_call"),
            "real_api_server_cpu_ms_per_call": r.get("real_api_server_cpu_ms_per_call"),
            "real_engine_threads": again.get("engine_threads"),
            "sim_run_inputs_makespan_s": again.get("makespan_s"),
            "sim_run_inputs_makespan_rel_err": again.get("makespan_rel_err")}
