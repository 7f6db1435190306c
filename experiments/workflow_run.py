"""The main job: one workflow batch, planned by a system and executed on a backend.

Backends: `sim` (the SimPy simulator, `sim/`), `echo` (the planner's in-memory null engine,
no timing model: useful to check plans and outputs in a second). Writes `calls.jsonl`
(per-call records), `outputs.jsonl` (final outputs, one line per query) and the summary.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from helium_lab.config import PlannerSettings, SystemConfig
from helium_lab.errors import ConfigError
from helium_lab.io import atomic_write_text
from helium_lab.optimizer import PromptCache
from helium_lab.pipeline import plan_batch
from helium_lab.processor import QueryProcessor, run_echo
from helium_lab.tokenizer import SyntheticTokenizer
from helium_lab.workflows import make_workload

BACKENDS = ("sim", "echo")


def run(cfg: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    backend = str(cfg.get("backend"))
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r} (config key 'backend'); "
                          f"known: {list(BACKENDS)}")
    system = SystemConfig.from_dict(cfg["system"])
    settings = PlannerSettings.from_dict(cfg["planner"])
    bound = make_workload(str(cfg["workflow"]), batch_size=int(cfg["batch_size"]),
                          seed=int(cfg["seed"]), **dict(cfg.get("workflow_params") or {}))
    tok = SyntheticTokenizer()
    namespace = f"{cfg.get('model', {}).get('name', 'synthetic')}"
    cache = None
    if "prompt_cache" in system.passes:
        cache = PromptCache(settings.prompt_cache_capacity, settings.prompt_cache_path)
    planned = plan_batch(bound, system, settings, int(cfg["num_workers"]), tok, cache=cache,
                         namespace=namespace, seed=int(cfg["seed"]))
    proc = QueryProcessor(planned.plan, planned.schedule, tok, system.processor(namespace))
    t0 = time.perf_counter()
    if backend == "echo":
        run_echo(proc, tok)
        makespan = max((r.finish_t for r in proc.records), default=0.0)
    else:
        raise ConfigError("backend 'sim' is not available yet in this build (see issue 3); "
                          "use backend=echo")
    wall = time.perf_counter() - t0
    if cache is not None:
        for key, value in proc.cache_updates:
            cache.put(key, value)
        if cache.path is not None:
            cache.save()
    atomic_write_text(run_dir / "calls.jsonl",
                      "".join(json.dumps(asdict(r)) + "\n" for r in proc.records))
    atomic_write_text(run_dir / "outputs.jsonl",
                      "".join(json.dumps({"query": q, **o}) + "\n"
                              for q, o in enumerate(proc.outputs())))
    prompt = sum(r.prompt_tokens for r in proc.records)
    cached = sum(r.cached_tokens for r in proc.records)
    summary = {
        "system": system.name, "workflow": cfg["workflow"], "backend": backend,
        "batch_size": bound.size, "num_workers": int(cfg["num_workers"]),
        "makespan_s": makespan, "planning_s": planned.planning_s,
        "num_llm_calls": len(proc.records), "prompt_tokens": prompt,
        "cached_prompt_tokens": cached, "prefix_hit_rate": cached / prompt if prompt else 0.0,
        "output_tokens": sum(r.output_tokens for r in proc.records), "wall_s": wall,
    }
    print(planned.schedule.describe())
    print(json.dumps(summary, indent=2))
    return summary
