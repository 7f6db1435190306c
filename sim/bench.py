"""Simulator speed benchmark: `python -m sim.bench [--repeats N] [--batches 16,80]`.

Runs Trading at the default point (Qwen3-8B, H100 NVL, 2 workers, 8 branches, 2 rounds,
Helium; day 1 warms up, day 2 is timed) for each batch size, and prints per batch the
median wall time of the measured day's simulation (`wall_s`, planning and start-up
excluded), simulated seconds per wall second, and the same for the step-by-step engine
(`fast_decode=False`) as the in-run baseline, with the ratio. Targets (issue 3): batch 16
<= 2 s, batch 80 <= 10 s. Machines are noisy: compare ratios, quote medians.
"""

from __future__ import annotations

import argparse
import statistics
import time

from experiments.compose import system_settings
from helium_lab.config import (
    ModelSettings,
    Orchestration,
    PlannerSettings,
)
from helium_lab.optimizer import PromptCache
from helium_lab.pipeline import plan_batch
from helium_lab.processor import QueryProcessor
from helium_lab.workflows import make_workload
from sim.session import SimSettings, open_session

TARGETS = {16: 2.0, 80: 10.0}


def measure(batch: int, fast: bool) -> tuple[float, float, int]:
    """(wall seconds, simulated makespan, calls) of the measured day of one Trading run."""
    model = ModelSettings("qwen3-8b")
    helium, engine, _ = system_settings("helium")
    settings = SimSettings(fast_decode=fast)  # the H100 NVL by default
    session = open_session(model, engine, 2, orchestration=Orchestration(), sim=settings)
    cache = PromptCache(100_000)
    planner = PlannerSettings()
    wall = makespan = 0.0
    calls = 0
    for day in ("2024-06-01", "2024-06-02"):
        bound = make_workload("trading", batch_size=batch, seed=0, branches=8, rounds=2,
                              day=day)
        planned = plan_batch(bound, helium, planner, 2, session.tokenizer, cache=cache,
                             namespace=model.name)
        proc = QueryProcessor(planned.plan, planned.schedule, session.tokenizer,
                              helium.processor(model.name))
        t0 = time.perf_counter()
        res = session.run(proc)
        wall = time.perf_counter() - t0
        makespan, calls = res.makespan, len(res.records)
        for key, value in proc.cache_updates:
            cache.put(key, value)
    return wall, makespan, calls


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batches", default="16,80")
    ap.add_argument("--no-baseline", action="store_true",
                    help="skip the step-by-step engine (it is ~2-3x slower)")
    args = ap.parse_args()
    print(f"{'batch':>5} {'engine':>13} {'calls':>6} {'makespan_s':>10} {'wall_s':>7} "
          f"{'sim_s/wall_s':>12}  target")
    for batch in (int(b) for b in args.batches.split(",")):
        walls: dict[bool, float] = {}
        for fast in (True, False) if not args.no_baseline else (True,):
            runs = [measure(batch, fast) for _ in range(args.repeats)]
            wall = statistics.median(r[0] for r in runs)
            walls[fast] = wall
            makespan, calls = runs[0][1], runs[0][2]
            target = TARGETS.get(batch)
            verdict = "" if not fast or target is None else (
                f"<= {target:.0f} s: {'met' if wall <= target else 'MISSED'}")
            print(f"{batch:>5} {'fast decode' if fast else 'step-by-step':>13} {calls:>6} "
                  f"{makespan:>10.2f} {wall:>7.2f} {makespan / wall:>12.1f}  {verdict}")
        if False in walls:
            print(f"{'':>5} speed-up of the fast decode path: "
                  f"{walls[False] / walls[True]:.2f}x (median of {args.repeats})")


if __name__ == "__main__":
    main()
