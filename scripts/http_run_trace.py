"""One real run of a baseline's client program at the validation's shape, second by
second beside its simulation: when requests entered the pool, went on the wire and opened
connections, what the engine ran, and who had the CPU (docs/client_overhead.md, "the
host's scheduler").

    .venv/bin/python scripts/http_run_trace.py langgraph debate \\
        --cost-table outputs/validate_sim/<run>/cost_table.json [--bin 1.0] [--out F.json]

The system (langgraph, opwise; a `system.program` of `validate_sim.systems`) and workflow
(mapred_mmlu, debate, reflect) run as `+experiment=validate_sim_systems` runs them: one
real run against a fresh vLLM API server (CPU build, tiny model), then the simulation with
the cost table given (a validation run's own `cost_table.json`: the host drifts, so the
same run's table is best). Real side, per bin from the program's start: requests entering
the pool, request headers sent, TCP connections opened (httpx's per-request trace
hook), the server's running and waiting requests (`/metrics`, the session's sampler), and
the CPU share of the client process, the API server, the engine core and the worker
(psutil, sampled every 0.1 s from a thread). Simulated side: requests sent and
connections opened by the modelled client (`sim/client_loop.py`), running and waiting
requests (engine steps, time-weighted). Totals: makespan, engine steps, mean running batch.

Wraps `ShortestQueueTransport.handle_async_request` and `ClientLoop` methods for the run.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import threading
import types
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any, cast

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psutil

import sim
import sim.client_loop as client_loop
from experiments.compose import compose_once
from experiments.validate_sim import DEFAULT_WORKFLOWS, _systems, planner
from experiments.validation_runs import mean_batch, real_runs, simulate
from helium_lab.config import EngineSettings, ModelSettings
from runtime import server_session
from runtime.programs import balancer
from runtime.tiny_model import tiny_model_dir
from runtime.tokenizer import HFTokenizer

ROLES = ("client", "api_server", "engine_core", "worker")


def trace_real(system: Any, engine: EngineSettings, cfg: dict[str, Any], make: Any,
               log_dir: Path) -> dict[str, Any]:
    """One real run with the wire events and per-process CPU recorded."""
    events: list[tuple[str, float]] = []  # (event, session clock)
    cpu: list[tuple[float, dict[str, float]]] = []
    clock_of: dict[str, Any] = {}
    send = balancer.ShortestQueueTransport.handle_async_request
    run_with = server_session.ServerSession._run_with

    async def traced_send(self: Any, request: Any) -> Any:
        clock = clock_of["clock"]

        async def hook(name: str, info: Any) -> None:
            if name in ("http11.send_request_headers.started",
                        "connection.connect_tcp.complete"):
                events.append((name.split(".")[1], clock()))

        request.extensions["trace"] = hook
        events.append(("enter", clock()))
        return await send(self, request)

    async def traced_run(self: Any, *args: Any, **kwargs: Any) -> Any:
        clock_of["clock"] = self.clock
        stop = threading.Event()
        me = psutil.Process()

        def sample() -> None:
            while not stop.is_set():
                own = me.cpu_times()
                row = {k.removesuffix("_cpu_s"): v for k, v in
                       server_session.cpu_seconds(self.servers[0]).items()}
                cpu.append((self.clock(), {**row, "client": own.user + own.system}))
                stop.wait(0.1)

        thread = threading.Thread(target=sample, daemon=True)
        thread.start()
        try:
            return await run_with(self, *args, **kwargs)
        finally:
            stop.set()
            thread.join()

    balancer.ShortestQueueTransport.handle_async_request = traced_send  # type: ignore[method-assign]
    server_session.ServerSession._run_with = traced_run  # type: ignore[method-assign]
    try:
        runs, _ = real_runs(make, system, ModelSettings.from_dict(cfg.get("model") or
                                                                  {"name": "tiny"}),
                            engine, int(cfg["num_workers"]), seed=int(cfg["seed"]),
                            cap=cfg["validate_sim"].get("max_output_tokens"), repeats=1,
                            log_dir=log_dir)
    finally:
        balancer.ShortestQueueTransport.handle_async_request = send  # type: ignore[method-assign]
        server_session.ServerSession._run_with = run_with  # type: ignore[method-assign]
    result = runs[0].result
    return {"start": result.start_t, "makespan": result.makespan, "events": events,
            "cpu": cpu, "samples": [(x.t, x.dt, x.running, x.waiting)
                                    for xs in result.timeseries.values() for x in xs],
            "steps": sum(st.get("num_steps", 0) for st in result.stats.values()),
            "mean_batch": mean_batch(result)}


def trace_sim(system: Any, engine: EngineSettings, cfg: dict[str, Any], make: Any,
              cost_table: Path) -> dict[str, Any]:
    """The same run simulated, with the modelled client's sends and connections."""
    events: list[tuple[str, float]] = []
    request, assign = client_loop.ClientLoop.request, client_loop.ClientLoop._assign

    def traced_request(self: Any, prompt_tokens: int) -> Any:
        req = request(self, prompt_tokens)
        events.append(("enter", self.env.now))
        req.sent.callbacks.append(lambda _: events.append(("send_request_headers",
                                                           self.env.now)))
        return req

    def traced_assign(self: Any, req: Any) -> None:
        opened = self.opened
        assign(self, req)
        if self.opened > opened:
            events.append(("connect_tcp", self.env.now))

    v = cfg["validate_sim"]
    client_loop.ClientLoop.request = traced_request  # type: ignore[method-assign]
    client_loop.ClientLoop._assign = traced_assign  # type: ignore[method-assign]
    try:
        tok = HFTokenizer.from_dir(tiny_model_dir())
        cost = sim.FittedStepCost.load(cost_table, "tiny", str(v.get("hardware", "cpu")))
        if engine.kv_capacity_tokens is None or engine.max_model_len is None:
            raise SystemExit("http_run_trace: the validation's engine settings name no KV "
                             "capacity or model length")
        geometry = {"kv_capacity_tokens": engine.kv_capacity_tokens,
                    "max_model_len": engine.max_model_len}
        result, _, _ = simulate(make, system, engine, geometry, int(cfg["num_workers"]), cost,
                                tok, cap=v.get("max_output_tokens"),
                                recorder=cast(Any, types.SimpleNamespace(replay=None)),
                                fast_decode=False, host_cores=v.get("host_cores"),
                                server_engine_threads=v.get("server_engine_threads", 1.0),
                                replay=False)
    finally:
        client_loop.ClientLoop.request = request  # type: ignore[method-assign]
        client_loop.ClientLoop._assign = assign  # type: ignore[method-assign]
    steps = [(x.t, x.dt, x.running, x.waiting)
             for xs in result.timeseries.values() for x in xs]
    return {"start": result.start_t, "makespan": result.makespan, "events": events,
            "samples": steps, "steps": sum(st["num_steps"] for st in result.stats.values()),
            "mean_batch": mean_batch(result)}


def per_bin(side: dict[str, Any], width: float) -> dict[int, dict[str, float]]:
    """Counts of wire events, time-weighted running/waiting and CPU shares per bin of
    `width` seconds from the program's start."""
    start = side["start"]
    bins: dict[int, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for name, t in side["events"]:
        bins[int((t - start) // width)][name] += 1
    for t, dt, running, waiting in side["samples"]:
        for k, share in _spread(t - start, dt, width):
            bins[k]["busy"] += share
            bins[k]["running"] += running * share
            bins[k]["waiting"] += waiting * share
    cpu = side.get("cpu") or []
    for (t0, a), (t1, b) in itertools.pairwise(cpu):
        if t1 <= t0:
            continue
        for k, share in _spread(t0 - start, t1 - t0, width):
            for role in ROLES:
                bins[k][f"cpu_{role}"] += (b.get(role, 0.0) - a.get(role, 0.0)) * share / (
                    t1 - t0) / width
    return bins


def _spread(t: float, dt: float, width: float) -> Iterable[tuple[int, float]]:
    """(bin, seconds of [t, t + dt) in it)."""
    end = t + dt
    while t < end - 1e-12:
        k = int(t // width)
        edge = min(end, (k + 1) * width)
        yield k, edge - t
        t = edge


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("system")
    ap.add_argument("workflow", choices=sorted(DEFAULT_WORKFLOWS))
    ap.add_argument("--cost-table", type=Path, required=True)
    ap.add_argument("--bin", type=float, default=1.0)
    ap.add_argument("--logs", type=Path, default=Path("outputs/http_run_trace"))
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    cfg = compose_once(["+experiment=validate_sim_systems"])
    systems = _systems(cfg, EngineSettings.from_dict(cfg["engine"]))
    if args.system not in systems or systems[args.system][0].program is None:
        programs = sorted(n for n, (s, _) in systems.items() if s.program)
        sys.exit(f"http_run_trace: {args.system!r} is not a client program of "
                 f"validate_sim.systems ({programs})")
    system, engine = systems[args.system]
    v = cfg["validate_sim"]
    make = planner(args.workflow, dict(DEFAULT_WORKFLOWS[args.workflow]), cfg, system,
                   int((v.get("batch_sizes") or {}).get(args.workflow, cfg["batch_size"])))
    real = trace_real(system, engine, cfg, make, args.logs / f"{args.system}_{args.workflow}")
    simulated = trace_sim(system, engine, cfg, make, args.cost_table)
    rb, sb = per_bin(real, args.bin), per_bin(simulated, args.bin)
    print(f"{args.system} {args.workflow}: makespan real {real['makespan']:.2f} s, sim "
          f"{simulated['makespan']:.2f} s; engine steps {real['steps']:.0f} / "
          f"{simulated['steps']:.0f}; mean batch {real['mean_batch']:.1f} / "
          f"{simulated['mean_batch']:.1f}")
    print(f"{'t':>5} | {'enter':>5} {'sent':>5} {'conn':>5} {'run':>5} {'wait':>5} "
          f"{'client':>6} {'api':>5} {'core':>5} {'worker':>6} | {'enter':>5} {'sent':>5} "
          f"{'conn':>5} {'run':>5} {'wait':>5}")
    for k in range(min(min(rb, default=0), min(sb, default=0)),
                   max(max(rb, default=0), max(sb, default=0)) + 1):
        r: dict[str, float] = defaultdict(float, rb.get(k, {}))
        s: dict[str, float] = defaultdict(float, sb.get(k, {}))

        def level(b: Any, key: str) -> float:
            return b[key] / b["busy"] if b.get("busy") else 0.0

        print(f"{k * args.bin:5.1f} | {r['enter']:5.0f} {r['send_request_headers']:5.0f} "
              f"{r['connect_tcp']:5.0f} {level(r, 'running'):5.0f} {level(r, 'waiting'):5.0f} "
              f"{r['cpu_client']:6.2f} {r['cpu_api_server']:5.2f} {r['cpu_engine_core']:5.2f} "
              f"{r['cpu_worker']:6.2f} | {s['enter']:5.0f} {s['send_request_headers']:5.0f} "
              f"{s['connect_tcp']:5.0f} {level(s, 'running'):5.0f} {level(s, 'waiting'):5.0f}")
    if args.out is not None:
        args.out.write_text(json.dumps({"real": real, "sim": simulated}))


if __name__ == "__main__":
    main()
