"""The two sides of `validate_sim` for one system and one workflow: real runs (in-process
vLLM engines, or the system's own client program against vLLM API servers) and simulated
runs with the same plan, engine settings and a cost table fitted to the same engine.

What each side includes, so that both model the same thing:

- a system without `program` runs in-process on the real side (the processor's dispatch
  discipline, no HTTP, no client CPU), so the simulation gets only `submit_overhead_s`;
- a system with `program` (LangGraph) runs its real client program against a vLLM API
  server per worker (`runtime.server_session`), so the simulation gets the system's whole
  orchestration: the client's per-call CPU (sim/client.py ClientCost) and the API server's
  per-request CPU (ServerCost), both measured on this machine (docs/client_overhead.md,
  docs/server_overhead.md).

A client program's real runs also measure two of the simulation's CPU inputs themselves
(`RunInputs`): the client's CPU per call and the weight of an API server's engine on the
cores (1 + its engine core's CPU over its worker's). `validate_sim` simulates once more with
them in place of the configured ones, which separates the configured costs' error (how
well the mock-measured client curves transfer to a busy host) from the rest of the model.
"""

from __future__ import annotations

import dataclasses
import statistics
from pathlib import Path
from typing import Any, NamedTuple

from helium_lab.backend import BackendResult
from helium_lab.config import EngineSettings, ModelSettings, Orchestration, SystemConfig
from helium_lab.errors import ConfigError
from helium_lab.processor import CallResult, LLMCall
from helium_lab.processor.calls import synthetic_completion
from helium_lab.processor.proxy import ProcessorProxy


class OutputRecorder(ProcessorProxy):
    """A processor proxy that records each finished call's output by (op, query), so a
    simulation can replay the real outputs (`replay`) and see the very same prompts."""

    def __init__(self, proc: Any) -> None:
        super().__init__(proc)
        self.tokenizer = proc.tok  # the QueryProcessor's, the session's tokenizer
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


class RealRun(NamedTuple):
    """One real run: its result, the outputs it recorded, and its engines' steps (each
    batch and how long vLLM took over it; empty for API servers, whose steps stay in the
    server process)."""

    result: BackendResult
    recorder: OutputRecorder
    steps: tuple[Any, ...]  # runtime.engine.StepShape


def median_run(runs: list[RealRun]) -> RealRun:
    """The run of median makespan (the lower middle of an even count)."""
    return sorted(runs, key=lambda r: r.result.makespan)[(len(runs) - 1) // 2]


class RunInputs(NamedTuple):
    """The CPU inputs a client program's real run measured: its client's CPU per call and
    its API servers' engine weight on the cores (1 + engine core CPU / worker CPU, over
    every server: the engine core polls its worker while it steps, sim/host_cpu.py)."""

    client_call_s: float
    engine_threads: float


def run_inputs(runs: list[RealRun]) -> RunInputs | None:
    """The medians over `runs` of each run's measured inputs; None when the runs did not
    measure them (in-process engines, or a server whose engine processes were not found
    by their titles)."""
    per_run = []
    for run in runs:
        stats = list(run.result.stats.values())
        calls = len(run.result.records)
        worker = sum(st.get("worker_cpu_s", 0.0) for st in stats)
        if not stats or not calls or "client_cpu_s" not in stats[0] or worker <= 0:
            return None
        core = sum(st.get("engine_core_cpu_s", 0.0) for st in stats)
        per_run.append((stats[0]["client_cpu_s"] / calls, 1.0 + core / worker))
    if not per_run:
        return None
    return RunInputs(statistics.median(x[0] for x in per_run),
                     statistics.median(x[1] for x in per_run))


def with_client_cost(system: SystemConfig, call_s: float) -> SystemConfig:
    """`system` whose client costs `call_s` per call in all, whatever the sizes and (from
    two calls in flight) the concurrency: the serial client model (sim/client.py), not
    the event loop, whose pool would add its own; a request's share stays the system's,
    half its one-call fixed part, and the response gets the rest."""
    one_call = float(system.orchestration.get("client_call_s", 0.0))
    orch = {**system.orchestration, "client_call_s": min(one_call, call_s),
            "client_prompt_token_s": 0.0, "client_output_token_s": 0.0,
            "client_concurrency": [[2.0, call_s]], "client_model": "serial"}
    return dataclasses.replace(system, orchestration=orch)


def step_cost_ratio(steps: tuple[Any, ...], cost: Any) -> float | None:
    """The cost model's time for a real run's engine steps over the time they took: the
    engine model's share of a makespan error, apart from the schedule's (the simulated
    run batches differently). None without steps."""
    from sim import BatchShape

    real = sum(s.dt for s in steps)
    if not steps or real <= 0:
        return None
    return sum(cost.step_time(BatchShape(s.prefills, s.decodes)) for s in steps) / real


def totals(records: Any) -> dict[str, int]:
    return {"calls": len(records), "prompt_tokens": sum(r.prompt_tokens for r in records),
            "cached_tokens": sum(r.cached_tokens for r in records),
            "output_tokens": sum(r.output_tokens for r in records)}


def mean_batch(result: BackendResult) -> float:
    """Requests running, averaged over the engines' busy time (as `summary.json`'s
    `mean_batch_requests`; sampled from `/metrics` for API servers)."""
    busy = sum(x.dt for xs in result.timeseries.values() for x in xs)
    held = sum(x.running * x.dt for xs in result.timeseries.values() for x in xs)
    return held / busy if busy else 0.0


def spread(values: list[float]) -> float:
    """(max - min) / median: the real runs' relative spread."""
    med = statistics.median(values)
    return (max(values) - min(values)) / med if med else 0.0


def real_runs(make_proc: Any, system: SystemConfig, model: ModelSettings,
              engine: EngineSettings, num_workers: int, *, seed: int, cap: int | None,
              repeats: int, log_dir: Path) -> tuple[list[RealRun], dict[str, int]]:
    """`repeats` real runs of `make_proc(tokenizer)` (fresh engines or servers each) and
    the KV geometry the simulation must copy (`kv_capacity_tokens`, `max_model_len`)."""
    from runtime import open_session
    from runtime.server_session import ServerSession

    runs: list[RealRun] = []
    geometry: dict[str, int] = {}
    for i in range(repeats):
        if system.program is not None:
            if engine.kv_capacity_tokens is None or engine.max_model_len is None:
                raise ConfigError("validate_sim: a client program's servers need "
                                  "engine.kv_capacity_tokens and engine.max_model_len set")
            with ServerSession(model, engine, num_workers, program=system.program,
                               log_dir=log_dir / f"servers_{i}", seed=seed,
                               max_output_tokens=cap) as srv:
                recorder = OutputRecorder(make_proc(srv.tokenizer, program_runs=True))
                runs.append(RealRun(srv.run(recorder), recorder, ()))
            geometry = {"kv_capacity_tokens": engine.kv_capacity_tokens,
                        "max_model_len": engine.max_model_len}
            continue
        with open_session(model, engine, num_workers, orchestration=Orchestration(),
                          seed=seed, max_output_tokens=cap,
                          log_path=log_dir / "engines.log") as session:
            eng = session.engines[0]
            if engine.enable_prefix_caching and not eng.pins_installed:
                raise ConfigError(
                    f"validate_sim: vLLM {eng.vllm_version} is not one runtime/pins.py "
                    f"supports (pins.TESTED_VLLM): the real engines would ignore "
                    f"engine.prewarm_pin={engine.prewarm_pin} and the retain/release "
                    "hints the simulator honours")
            recorder = OutputRecorder(make_proc(session.tokenizer))
            first = [len(e.steps) for e in session.engines]
            result = session.run(recorder)
            steps = tuple(s for e, k in zip(session.engines, first, strict=True)
                          for s in e.steps[k:])
            runs.append(RealRun(result, recorder, steps))
            geometry = {"kv_capacity_tokens": eng.kv_capacity_tokens,
                        "max_model_len": eng.max_model_len}
    return runs, geometry


def simulate(make_proc: Any, system: SystemConfig, engine: EngineSettings,
             geometry: dict[str, int], num_workers: int, cost: Any, tok: Any, *,
             cap: int | None, recorder: OutputRecorder, fast_decode: bool,
             host_cores: int | None = None, server_engine_threads: float = 1.0,
             replay: bool = True) -> tuple[BackendResult, BackendResult | None, float]:
    """The simulation with synthetic outputs, then (with `replay`; else None) fed the real
    outputs (identical prompts on both sides: what differs is the engine model alone), and
    the client CPU seconds of the first (0 for a system without a client program).
    `host_cores`: the real machine's cores, which a client program, its API server and the
    engine share there (sim/host_cpu.py); None: a core each. `server_engine_threads`: the
    runnable threads an API server's engine weighs while it steps (its worker and its
    polling engine core)."""
    import sim
    from helium_lab.processor.capping import capped
    from sim.session import orchestration_costs

    orch = Orchestration.from_dict(system.orchestration)
    sim_cfg = sim.EngineConfig(geometry["kv_capacity_tokens"] // engine.block_size, engine,
                               geometry["max_model_len"])
    costs: dict[str, Any] = {}
    if system.program is not None:  # the real side pays the client's and server's CPU
        client, server = orchestration_costs(orch)
        costs = {"client": client, "server": server}
    out, client_cpu_s = [], []
    for outputs in (synthetic_completion, recorder.replay)[:2 if replay else 1]:
        session = sim.Simulation(
            [sim_cfg] * num_workers, cost, tokenizer=tok,
            submit_overhead_s=orch.submit_overhead_s if system.program is None else 0.0,
            fast_decode=fast_decode, outputs=outputs, host_cores=host_cores,
            engine_threads=server_engine_threads if system.program is not None else 1,
            **costs)
        out.append(session.run(capped(make_proc(tok), cap)))
        client_cpu_s.append(session.client_cpu_s)
    return out[0], out[1] if replay else None, client_cpu_s[0]

