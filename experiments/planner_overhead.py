"""Fig. 11: how long planning takes and how much metadata it keeps, on Trading.

Planning = optimizer (prune, CSE, static prefixes; the prompt-cache probe runs against an
empty cache so it costs what probing costs) + TRT construction (with PartitionWorkflow) +
cache-aware scheduling (Alg. 1). Metadata = the TRT plus the scheduler's state.
`batch_scaling_ratio` = (TRT + scheduling time at `scaling_batch`) / (same at the default
batch), the largest over the branch counts: operator-level planning should not grow with
the batch.
"""

from __future__ import annotations

import time
from pathlib import Path
from statistics import median
from typing import Any

from tqdm import tqdm

from helium_lab.config import PlannerSettings
from helium_lab.cost import TokenStepCost
from helium_lab.optimizer import OptimizerConfig, PromptCache, optimize
from helium_lab.scheduling import PlanningContext
from helium_lab.scheduling.helium import helium_schedule
from helium_lab.tokenizer import SyntheticTokenizer
from helium_lab.workflows import make_workload


def _once(bound, opt_cfg, tok, cost, seed, settings) -> tuple[float, float, float, float, int]:
    t0 = time.perf_counter()
    plan = optimize(bound, opt_cfg, cache=PromptCache(), tokenizer=tok)
    t1 = time.perf_counter()
    sched = helium_schedule(PlanningContext(plan, tok, cost, seed,
                                            settings.refine_max_evaluations,
                                            settings.partition))
    t2 = time.perf_counter()
    meta = int(sched.stats["trt_bytes"] + sched.stats["scheduler_bytes"])
    return ((t1 - t0) * 1e3, sched.stats["trt_ms"], sched.stats["cas_ms"], (t2 - t0) * 1e3,
            meta)


def measure(branches: int, batches: tuple[int, int], workers: int, repeats: int,
            settings: PlannerSettings, seed: int) -> list[dict[str, Any]]:
    """Time planning at both batch sizes, alternating, so both see the same machine load."""
    tok = SyntheticTokenizer()
    bounds = [make_workload("trading", batch_size=b, seed=seed, branches=branches)
              for b in batches]
    cost = TokenStepCost.uniform(workers, settings.token_step_capacity, settings.alpha)
    opt_cfg = OptimizerConfig(static_prefix_min_tokens=settings.static_prefix_min_tokens)
    samples: list[list[tuple[float, float, float, float, int]]] = [[], []]
    for _ in range(repeats):
        for i, bound in enumerate(bounds):
            samples[i].append(_once(bound, opt_cfg, tok, cost, seed, settings))
    out = []
    for bound, rows in zip(bounds, samples, strict=True):
        plan_ops = len(bound.graph.llm_ops)
        out.append({"llm_ops": plan_ops, "calls": plan_ops * bound.size,
                    "optimizer_ms_median": round(median(r[0] for r in rows), 3),
                    "trt_ms_median": round(median(r[1] for r in rows), 3),
                    "cas_ms_median": round(median(r[2] for r in rows), 3),
                    "trt_cas_ms_median": round(median(r[1] + r[2] for r in rows), 3),
                    "planning_ms_median": round(median(r[3] for r in rows), 3),
                    "metadata_bytes": rows[-1][4]})
    return out


def run(cfg: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    p = cfg["planner_overhead"]
    settings = PlannerSettings.from_dict(cfg["planner"])
    batch, workers, reps = int(cfg["batch_size"]), int(cfg["num_workers"]), int(p["repeats"])
    out: dict[str, Any] = {"batch_size": batch, "num_workers": workers, "branches": {}}
    ratios = {}
    for b in tqdm(p["branches"], desc="branches", disable=not cfg.get("progress", True)):
        row, big = measure(int(b), (batch, int(p["scaling_batch"])), workers, reps, settings,
                           int(cfg["seed"]))
        row["scaling"] = {"batch": int(p["scaling_batch"]),
                          "trt_cas_ms_median": big["trt_cas_ms_median"],
                          "optimizer_ms_median": big["optimizer_ms_median"],
                          "ratio": round(big["trt_cas_ms_median"] / row["trt_cas_ms_median"], 3)}
        ratios[str(b)] = row["scaling"]["ratio"]
        out["branches"][str(b)] = row
    out["batch_scaling_ratio"] = max(ratios.values())
    print(f"{'branches':>8} {'ops':>5} {'plan ms':>8} {'opt ms':>7} {'trt ms':>7} "
          f"{'cas ms':>7} {'meta KiB':>9} {'x1024':>6}")
    for b, r in out["branches"].items():
        print(f"{b:>8} {r['llm_ops']:>5} {r['planning_ms_median']:>8.2f} "
              f"{r['optimizer_ms_median']:>7.2f} {r['trt_ms_median']:>7.2f} "
              f"{r['cas_ms_median']:>7.2f} {r['metadata_bytes'] / 1024:>9.1f} "
              f"{r['scaling']['ratio']:>6.2f}")
    print(f"batch_scaling_ratio (TRT+CAS at {p['scaling_batch']} / at {batch}): "
          f"{out['batch_scaling_ratio']:.2f}")
    return out
