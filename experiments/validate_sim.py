"""Validate the simulator against real vLLM: same plans, same tokens, calibrated costs.

For each workflow family (small batch, scaled-down parameters, outputs capped at
`max_output_tokens` for both backends), one system's plan runs

- on real vLLM engines (`runtime.open_session`, the configured model: `tiny` on CPU), and
- on `sim.Simulation` with the same engine settings, the same HF tokenizer and a
  `FittedStepCost` fitted to the same engine (`runtime.calibrate`; run first into the run
  folder when `validate_sim.cost_table` is null),

Both sides run the headline configuration: prewarmed prefixes pinned as `engine.prewarm_pin`
says (soft by default: the simulator's `pin_mode`, runtime/pins.py's mode on vLLM) and the
processor's `retain` / `release` hints honoured (soft-pinned retention, when the system has
`retain_prefixes`). A second simulation replays the real run's outputs
(`OutputRecorder`): with identical prompts on both sides, its cached tokens isolate the
engine model from the outputs' content (`cached_tokens_rel_err_real_outputs`).

The real side runs `validate_sim.real_repeats` times (fresh engines each; default 3) and
its median makespan is compared: sub-second CPU makespans vary by 10-20% from run to run
on a shared machine. Cached tokens must agree across repeats (greedy decoding, same
schedule) and the spread of the real makespans is reported.

The summary reports, per workflow, `makespan_rel_err` = |sim - real| / real and
`cached_tokens_rel_err` (total prompt tokens served from the prefix cache), plus the raw
numbers. Every workflow gets fresh engines on both sides (cold caches). Outputs differ in
content (the simulator's are synthetic) but not in length, so prompts have the same
structure and nearly the same token counts (`prompt_tokens` of both are reported).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from helium_lab.config import (
    EngineSettings,
    ModelSettings,
    Orchestration,
    PlannerSettings,
    SystemConfig,
)
from helium_lab.errors import ConfigError
from helium_lab.io import atomic_write_text
from helium_lab.pipeline import plan_batch
from helium_lab.processor import CallResult, LLMCall, QueryProcessor
from helium_lab.processor.calls import synthetic_completion
from helium_lab.processor.proxy import ProcessorProxy
from helium_lab.workflows import make_workload

DEFAULT_WORKFLOWS: dict[str, dict[str, Any]] = {
    "mapred_mmlu": {"experts": 3, "roles": 3},
    "debate": {"agents": 2, "rounds": 2},
    "reflect": {"critics": 2, "questions": 1},
    "iterative": {"chunks": 3, "reviews_per_chunk": 2},
    "parallel": {"experts": 2, "chunks": 2, "reviews_per_chunk": 1},
    # Trading is left out: rebuilt from the reference program, its stock-price and
    # stock-stats documents (~16k and ~18k tokens) are ~68k tokens of the tiny model's
    # tokenizer, beyond its 32k context (runtime/tiny_model.py)
}


def _processor(name: str, params: dict[str, Any], cfg: dict[str, Any], system: SystemConfig,
               tok: Any) -> QueryProcessor:
    bound = make_workload(name, batch_size=int(cfg["batch_size"]), seed=int(cfg["seed"]),
                          **params)
    namespace = str(cfg.get("model", {}).get("name", "tiny"))
    planned = plan_batch(bound, system, PlannerSettings.from_dict(cfg.get("planner", {})),
                         int(cfg["num_workers"]), tok, namespace=namespace,
                         seed=int(cfg["seed"]))
    return QueryProcessor(planned.plan, planned.schedule, tok, system.processor(namespace))


class OutputRecorder(ProcessorProxy):
    """A processor proxy that records each finished call's output by (op, query), so a
    simulation can replay the real outputs (`replay`) and see the very same prompts."""

    def __init__(self, proc: Any) -> None:
        super().__init__(proc)
        self._keys: dict[int, tuple[str, int]] = {}
        self.outputs: dict[tuple[str, int], tuple[str, tuple[int, ...]]] = {}

    def emitted(self, calls: list[LLMCall]) -> list[LLMCall]:
        for c in calls:
            self._keys[c.call_id] = (c.op, c.query)
        return calls

    def finished(self, result: CallResult) -> None:
        self.outputs[self._keys[result.call_id]] = (result.output_text,
                                                    tuple(result.output_ids))

    def replay(self, call: LLMCall, tokenizer: Any) -> tuple[str, tuple[int, ...]]:
        """A `sim.engine.OutputSource` giving each call the output recorded for it."""
        try:
            return self.outputs[(call.op, call.query)]
        except KeyError:
            raise RuntimeError(f"validate_sim: no recorded output for op {call.op!r}, "
                               f"query {call.query}: the runs issued different calls") from None


def _rel(sim: float, real: float) -> float:
    return abs(sim - real) / real if real else float(sim != real)


def _totals(records: Any) -> dict[str, int]:
    return {"calls": len(records), "prompt_tokens": sum(r.prompt_tokens for r in records),
            "cached_tokens": sum(r.cached_tokens for r in records),
            "output_tokens": sum(r.output_tokens for r in records)}


def run(cfg: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    import sim
    from helium_lab.processor.capping import capped
    from runtime import open_session
    from runtime.calibrate import calibrate

    v = dict(cfg.get("validate_sim") or {})
    model = ModelSettings.from_dict(cfg.get("model") or {"name": "tiny"})
    system = SystemConfig.from_dict(cfg["system"])
    engine = EngineSettings.from_dict(cfg.get("engine") or {})
    orch = Orchestration.from_dict(system.orchestration)
    cap = v.get("max_output_tokens")
    hardware = str(v.get("hardware", "cpu"))
    table = v.get("cost_table")
    calibration = None
    if table is None:
        table = run_dir / "cost_table.json"
        max_len = min(engine.max_model_len or 2048, int(v.get("calibrate_max_len", 8192)))
        calibration = calibrate(model, Path(table), hardware, engine.block_size, max_len,
                                quick=bool(v.get("calibrate_quick", False)))
    cost = sim.FittedStepCost.load(table, model.name, hardware)
    workflows = v.get("workflows") or DEFAULT_WORKFLOWS
    repeats = int(v.get("real_repeats", 3))
    if repeats < 1:
        raise ConfigError(f"validate_sim.real_repeats must be >= 1, got {repeats}")
    rows: dict[str, Any] = {}
    for name, params in workflows.items():
        reals: list[tuple[Any, OutputRecorder]] = []
        for _ in range(repeats):
            with open_session(model, engine, int(cfg["num_workers"]), orchestration=orch,
                              seed=int(cfg["seed"]), max_output_tokens=cap,
                              log_path=run_dir / "engines.log") as session:
                tok = session.tokenizer
                recorder = OutputRecorder(_processor(name, dict(params), cfg, system, tok))
                eng = session.engines[0]
                if engine.enable_prefix_caching and eng.pins is None:
                    raise ConfigError(
                        f"validate_sim: vLLM {eng.vllm.__version__} is not one runtime/pins.py "
                        f"supports (pins.TESTED_VLLM): the real engines would ignore "
                        f"engine.prewarm_pin={engine.prewarm_pin} and the retain/release "
                        "hints the simulator honours")
                reals.append((session.run(recorder), recorder))
        cached = {_totals(x.records)["cached_tokens"] for x, _ in reals}
        if len(cached) > 1:
            raise RuntimeError(f"validate_sim: {name}: real cached tokens differ across "
                               f"repeats ({sorted(cached)}): the engines are not deterministic")
        real, recorder = sorted(reals, key=lambda x: x[0].makespan)[(len(reals) - 1) // 2]
        sim_cfg = sim.EngineConfig(
            kv_capacity_tokens=eng.kv_capacity_tokens, block_size=engine.block_size,
            max_num_seqs=engine.max_num_seqs,
            max_num_batched_tokens=engine.max_num_batched_tokens,
            queue_order=engine.queue_order,
            enable_prefix_caching=engine.enable_prefix_caching,
            max_model_len=eng.max_model_len,
            pin_mode=engine.prewarm_pin)  # the real engines' mode (runtime/pins.py)
        # the simulation with synthetic outputs, then fed the real outputs: identical
        # prompts on both sides, so what differs is the engine model alone
        sims = []
        for outputs in (synthetic_completion, recorder.replay):
            sims.append(sim.Simulation(
                [sim_cfg] * int(cfg["num_workers"]), cost, tokenizer=tok,
                submit_overhead_s=orch.submit_overhead_s,
                fast_decode=bool(v.get("sim_fast_decode", False)), outputs=outputs,
            ).run(capped(_processor(name, dict(params), cfg, system, tok), cap)))
        simulated, replayed = sims
        r, s = _totals(real.records), _totals(simulated.records)
        rp = _totals(replayed.records)
        rows[name] = {
            "params": dict(params),
            "real_makespan_s": round(real.makespan, 4),
            "real_makespans_s": [round(x.makespan, 4) for x, _ in reals],
            "sim_makespan_s": round(simulated.makespan, 4),
            "makespan_rel_err": round(_rel(simulated.makespan, real.makespan), 4),
            "cached_tokens_rel_err": round(_rel(s["cached_tokens"], r["cached_tokens"]), 4),
            "real": r, "sim": s,
            "sim_real_outputs": {**rp, "makespan_s": round(replayed.makespan, 4)},
            "cached_tokens_rel_err_real_outputs": round(
                _rel(rp["cached_tokens"], r["cached_tokens"]), 4),
            "real_steps": int(sum(st["num_steps"] for st in real.stats.values())),
            "real_busy_s": round(sum(st["busy_s"] for st in real.stats.values()), 4),
            "sim_steps": int(sum(st["num_steps"] for st in simulated.stats.values())),
        }
        print(f"{name:<12} makespan real {real.makespan:7.3f}s sim {simulated.makespan:7.3f}s "
              f"(err {rows[name]['makespan_rel_err']:.3f})  cached real {r['cached_tokens']} "
              f"sim {s['cached_tokens']} (err {rows[name]['cached_tokens_rel_err']:.3f}; "
              f"with the real outputs {rp['cached_tokens']}, err "
              f"{rows[name]['cached_tokens_rel_err_real_outputs']:.3f})")
    errs = [x["makespan_rel_err"] for x in rows.values()]
    cerrs = [x["cached_tokens_rel_err"] for x in rows.values()]
    summary = {
        "model": model.name, "hardware": hardware, "system": system.name,
        "cost_table": str(table), "calibration": calibration, "max_output_tokens": cap,
        "real_repeats": repeats, "prewarm_pin": engine.prewarm_pin,
        "retain_prefixes": bool(system.retain_prefixes),
        "workflows": rows,
        "makespan_rel_err_max": max(errs, default=0.0),
        "cached_tokens_rel_err_max": max(cerrs, default=0.0),
        "targets": {"makespan_rel_err": 0.15, "cached_tokens_rel_err": 0.05},
    }
    atomic_write_text(run_dir / "validation.json", json.dumps(summary, indent=2) + "\n")
    return summary
