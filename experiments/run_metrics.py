"""Summary metrics of one run, computed from its records and engine time series only.

Everything here is a deterministic function of the backend's result, except the
planner's timings (`planning_s`, `optimizer_s`, `scheduler_s`), which are wall-clock
measurements of the planner on this machine.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from helium_lab.backend import BackendResult
from helium_lab.pipeline import Planned

# Engine counters summed over workers into the summary (names of SimEngine.stats()).
SUMMED_STATS = ("num_preemptions", "evicted_blocks", "evicted_pinned_blocks", "num_prewarms",
                "num_prewarms_skipped", "num_steps", "evicted_held_blocks")
# Host KV tier counters (sim/host_tier.py), present only when the engines have the tier.
HOST_STATS = ("gpu_hit_tokens", "host_hit_tokens", "miss_tokens", "host_written_blocks",
              "host_write_skipped_blocks", "host_written_back_blocks", "host_loaded_blocks",
              "host_evicted_blocks")
# Background-load counters (sim/host_loads.py), present only in the deferred load mode.
LOAD_STATS = ("host_deferred_loaded_blocks", "host_prefetched_blocks", "host_loads_denied")


def summarize(result: BackendResult, planned: Planned) -> dict[str, Any]:
    recs = result.records
    prompt = sum(r.prompt_tokens for r in recs)
    cached = sum(r.cached_tokens for r in recs)
    lat = np.array([r.finish_t - r.submit_t for r in recs]) if recs else np.zeros(1)
    busy = sum(x.dt for xs in result.timeseries.values() for x in xs)
    req_time = sum(x.running * x.dt for xs in result.timeseries.values() for x in xs)
    tok_time = sum(x.batched_tokens * x.dt for xs in result.timeseries.values() for x in xs)
    peaks = [(x.running, x.batched_tokens) for xs in result.timeseries.values() for x in xs]
    out: dict[str, Any] = {
        "makespan_s": result.makespan,
        "prewarm_s": result.start_t - result.begin_t,
        "planning_s": planned.planning_s,
        "optimizer_s": planned.optimizer_s,
        "scheduler_s": planned.scheduler_s,
        "num_llm_calls": len(recs),
        "prompt_tokens": prompt,
        "cached_prompt_tokens": cached,
        "prefix_hit_rate": cached / prompt if prompt else 0.0,
        "output_tokens": sum(r.output_tokens for r in recs),
        "mean_batch_requests": req_time / busy if busy else 0.0,
        "mean_batched_tokens": tok_time / busy if busy else 0.0,
        "peak_batch_requests": max((p[0] for p in peaks), default=0),
        "peak_batched_tokens": max((p[1] for p in peaks), default=0),
        "latency_mean_s": float(lat.mean()),
        "latency_p50_s": float(np.percentile(lat, 50)),
        "latency_p95_s": float(np.percentile(lat, 95)),
        "plan": {"num_calls": planned.plan.num_calls(), "pruned_ops": len(planned.plan.pruned),
                 "fetched_ops": len(planned.plan.fetched),
                 "static_prefixes": len(planned.plan.static_prefixes),
                 "policy": planned.schedule.policy, "dispatch": planned.schedule.dispatch},
    }
    for key in SUMMED_STATS:
        vals = [st[key] for st in result.stats.values() if key in st]
        if vals:
            out[key] = int(sum(vals))
    if any("host_hit_tokens" in st for st in result.stats.values()):
        for key in HOST_STATS:
            out[key] = int(sum(st.get(key, 0) for st in result.stats.values()))
        looked = out["gpu_hit_tokens"] + out["host_hit_tokens"] + out["miss_tokens"]
        out["gpu_hit_rate"] = out["gpu_hit_tokens"] / looked if looked else 0.0
        out["host_hit_rate"] = out["host_hit_tokens"] / looked if looked else 0.0
        out["host_load_s"] = sum(st.get("host_load_s", 0.0) for st in result.stats.values())
        out["host_stall_s"] = sum(st.get("host_stall_s", 0.0) for st in result.stats.values())
        if any(LOAD_STATS[0] in st for st in result.stats.values()):
            for key in LOAD_STATS:
                out[key] = int(sum(st.get(key, 0) for st in result.stats.values()))
            out["host_background_load_s"] = sum(st.get("host_background_load_s", 0.0)
                                                for st in result.stats.values())
    out["engines"] = {str(w): st for w, st in sorted(result.stats.items())}
    return out
