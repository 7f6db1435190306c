"""Table 5: each scheduling method's total token steps T(σ) against the exact optimum.

For every instance (one of the paper's seven dataset-workflow configurations, scaled down to
2-4 agents over 2-4 queries, on one worker), the plan is built with pruning only (Table 5
compares schedules, not rewrites or caches), each method's schedule is turned into
call-level orders under its own dispatch discipline and costed with Eq. 5, and the MILP
gives the optimum (or its best incumbent and bound within the time limit). Gap (Eq. 6) is
taken against the best schedule known: the MILP incumbent, or a method's own if that is
better when the MILP stopped at its time limit.

Methods: `helium_alg1` is Alg. 1 as the paper states it, the method the paper's Table 5
reports and the one `judged_method` names for the verdicts; `helium` is Alg. 1 followed by
our call-level refinement (an extension, labelled so); the four baselines are those of
`scheduling/baselines.py`. With `table5.soft_bound`, each instance also gets the best
operator-level soft schedule there is (experiments/soft_schedule_bound.py): what no
op-level scheduler dispatched best effort can beat, Alg. 1 included.
"""

from __future__ import annotations

from pathlib import Path
from statistics import fmean
from typing import Any

from tqdm import tqdm

from experiments.soft_schedule_bound import best_soft_schedule
from helium_lab.config import PlannerSettings
from helium_lab.cost import TokenStepCost
from helium_lab.errors import ConfigError
from helium_lab.optimizer import OptimizerConfig, optimize
from helium_lab.scheduling import PlanningContext, get_policy
from helium_lab.scheduling.evaluation import evaluate_schedule
from helium_lab.scheduling.exact import solve_exact
from helium_lab.scheduling.tokensteps import CallInstance
from helium_lab.tokenizer import SyntheticTokenizer
from helium_lab.workflows import make_workload

NO_PASSES = OptimizerConfig(prune=True, cse=False, prompt_cache=False, static_prefix=False)

LABELS = {
    "querywise": "QueryWise (queries one after another)",
    "opwise": "OpWise (operator by operator over the batch)",
    "random": "Random (any ready call, seeded)",
    "lspf": "LSPF (ready call sharing the longest prefix with the previous one)",
    "helium_alg1": "Helium, Alg. 1 as the paper states it",
    "helium": "Helium + call-level refinement (our extension of Alg. 1)",
}
EXTENSIONS = {"helium"}
SOFT_BOUND = "best operator-level soft schedule (exhaustive search; a bound, not a method)"


def solve_instance(spec: dict[str, Any], methods: list[str], settings: PlannerSettings,
                   time_limit_s: float, seed: int, soft_bound: bool = False) -> dict[str, Any]:
    tok = SyntheticTokenizer()
    bound = make_workload(spec["workflow"], batch_size=int(spec["batch_size"]), seed=seed,
                          **spec.get("params", {}))
    plan = optimize(bound, NO_PASSES, tokenizer=tok)
    cost = TokenStepCost.uniform(1, settings.token_step_capacity, settings.alpha)
    ctx = PlanningContext(plan, tok, cost, seed, settings.refine_max_evaluations,
                          settings.partition)
    inst = CallInstance.from_plan(plan, tok)
    steps: dict[str, float] = {}
    orders: dict[str, list[list[int]]] = {}
    for m in methods:
        ev = evaluate_schedule(get_policy(m)(ctx), inst, cost)
        steps[m], orders[m] = ev.makespan, ev.orders
    best = min(steps, key=steps.__getitem__)
    milp = solve_exact(inst, cost, 1, time_limit_s=time_limit_s, warm_start=orders[best],
                       upper_bound=steps[best])
    reference = milp.makespan if milp.status == "optimal" else min(milp.makespan, *steps.values())
    extra: dict[str, Any] = {}
    if soft_bound:
        sb = best_soft_schedule(inst, cost)
        extra = {"soft_bound": {
            "token_steps": sb.token_steps,
            "gap_pct": 100.0 * (sb.token_steps - reference) / reference,
            "stages": [list(st) for st in sb.stages], "candidates": sb.candidates,
            "distinct_orders": sb.distinct_orders}}
    return {
        "name": spec["name"], "workflow": spec["workflow"], "calls": len(inst),
        "llm_ops": len(plan.llm_ops), "queries": plan.size, "agents": spec.get("agents"),
        "milp_status": milp.status, "milp_token_steps": milp.makespan,
        "milp_bound": milp.bound, "milp_solve_s": round(milp.solve_s, 3),
        "reference_token_steps": reference,
        "token_steps": steps,
        "gap_pct": {m: 100.0 * (t - reference) / reference for m, t in steps.items()},
        **extra,
    }


def run(cfg: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    t5 = cfg["table5"]
    methods = list(t5["methods"])
    for m in methods:
        get_policy(m)  # fail fast on an unknown method
    settings = PlannerSettings.from_dict(cfg["planner"])
    limit = t5["milp_time_limit_s"]
    if isinstance(limit, bool) or not isinstance(limit, (int, float)) or limit <= 0:
        raise ConfigError(f"table5.milp_time_limit_s must be a number of seconds > 0, got "
                          f"{limit!r}")
    soft_bound = t5.get("soft_bound", False)
    if not isinstance(soft_bound, bool):
        raise ConfigError(f"table5.soft_bound must be true or false, got {soft_bound!r}")
    rows = [solve_instance(spec, methods, settings, float(limit),
                           int(cfg["seed"]), soft_bound)
            for spec in tqdm(t5["instances"], desc="table5 instances",
                             disable=not cfg.get("progress", True))]
    judged = str(t5.get("judged_method", "helium_alg1"))
    if judged not in methods:
        raise ConfigError(f"table5.judged_method {judged!r} is not in table5.methods {methods}")
    summary: dict[str, Any] = {"instances": rows, "methods": {}, "judged_method": judged}
    for m in methods:
        gaps = [r["gap_pct"][m] for r in rows]
        summary["methods"][m] = {
            "gap_avg_pct": round(fmean(gaps), 3), "gap_max_pct": round(max(gaps), 3),
            "token_steps_avg": fmean(r["token_steps"][m] for r in rows),
            "label": LABELS.get(m, m), "extension": m in EXTENSIONS}
    if soft_bound:
        gaps = [r["soft_bound"]["gap_pct"] for r in rows]
        summary["soft_bound"] = {"gap_avg_pct": round(fmean(gaps), 3),
                                 "gap_max_pct": round(max(gaps), 3), "label": SOFT_BOUND}
    summary["all_optimal"] = all(r["milp_status"] == "optimal" for r in rows)
    refs = [r["reference_token_steps"] for r in rows]
    summary["sizes"] = {"calls_min": min(r["calls"] for r in rows),
                        "calls_max": max(r["calls"] for r in rows),
                        "reference_token_steps_min": min(refs),
                        "reference_token_steps_max": max(refs),
                        "reference_token_steps_avg": fmean(refs)}
    print(format_table(summary, methods))
    return summary


def format_table(summary: dict[str, Any], methods: list[str]) -> str:
    head = (f"{'instance':<18}{'calls':>6}{'MILP':>14}  "
            + "".join(f"{m + ('*' if m in EXTENSIONS else ''):>16}" for m in methods))
    lines = ["Table 5: total token steps (gap % vs the optimum)", head]
    for r in summary["instances"]:
        cells = "".join(f"{r['token_steps'][m]:>9.3g} ({r['gap_pct'][m]:4.1f})" for m in methods)
        lines.append(f"{r['name']:<18}{r['calls']:>6}{r['milp_token_steps']:>10.4g} "
                     f"{r['milp_status'][:3]}  {cells}")
    avg = "".join(f"{summary['methods'][m]['gap_avg_pct']:>15.2f}%" for m in methods)
    mx = "".join(f"{summary['methods'][m]['gap_max_pct']:>15.2f}%" for m in methods)
    lines += [f"{'avg gap':<40}{avg}", f"{'max gap':<40}{mx}"]
    bound = summary.get("soft_bound")
    if bound:
        per = " ".join(f"{r['soft_bound']['gap_pct']:.2f}" for r in summary["instances"])
        lines.append(f"{SOFT_BOUND}: gap avg {bound['gap_avg_pct']:.2f}%, max "
                     f"{bound['gap_max_pct']:.2f}% (per instance: {per})")
    judged = summary.get("judged_method")
    if judged:
        lines.append(f"judged (the paper's algorithm): {judged}; * = our extension, reported "
                     "beside it")
    return "\n".join(lines)
