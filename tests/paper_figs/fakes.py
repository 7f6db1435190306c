"""Tiny fake result folders for the paper_figs tests (no simulator involved)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from experiments.paper import Run
from paper_figs.store import Store


def fake_config(run: Run) -> dict[str, Any]:
    return {"task": run.task, "overrides": list(run.overrides), "progress": False}


def fake_summary(makespan: float = 100.0, **kw: Any) -> dict[str, Any]:
    s = {"status": "ok", "makespan_s": makespan, "planning_s": 0.01, "num_llm_calls": 4,
         "prompt_tokens": 1000, "cached_prompt_tokens": 400, "prefix_hit_rate": 0.4,
         "output_tokens": 200, "mean_batch_requests": 2.0, "latency_p50_s": 1.0,
         "latency_p95_s": 2.0}
    s.update(kw)
    return s


def write_run(store: Store, run: Run, summary: dict[str, Any] | None = None,
              cfg: dict[str, Any] | None = None) -> Path:
    """A complete, valid run folder as paper_figs' sweep would leave it."""
    cfg = cfg if cfg is not None else fake_config(run)
    store.stamp(run, cfg)
    d = store.run_dir(run)
    (d / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(cfg)))
    (d / "summary.json").write_text(json.dumps(summary or fake_summary()))
    calls = [{"call_id": i, "query": i % 2, "op": "a", "worker": i % 2, "submit_t": 0.0,
              "start_t": 0.5 * i, "first_token_t": 0.5 * i + 0.2, "finish_t": 0.5 * i + 2.0,
              "prompt_tokens": 100, "cached_tokens": 40, "output_tokens": 20}
             for i in range(4)]
    (d / "calls.jsonl").write_text("".join(json.dumps(c) + "\n" for c in calls))
    ts = ["worker,t,dt,steps,running,waiting,batched_tokens,kv_usage"]
    ts += [f"{w},{0.1 * k},0.1,1,{2 + w},0,64,0.1" for w in (0, 1) for k in range(30)]
    (d / "timeseries.csv").write_text("\n".join(ts) + "\n")
    return d
