"""Run a query processor against simulated engines on SimPy time.

The processor is a pure state machine (DESIGN.md); this driver owns time:

1. prewarm: every prefix from `proc.prewarm_prompts()` is prefilled (and soft-pinned) on
   its worker; `proc.start()` runs once all prewarms finished (`SimResult.start_t`).
2. Calls the processor emits reach their engine `submit_overhead_s` later (the baselines'
   load balancer plus HTTP round trip; 0 for an in-process engine); their `submit_t` is
   the emission time, so per-call latencies include the overhead.
3. Each completion goes to `proc.on_finished` at its finish time; the calls it returns
   are dispatched the same way. The run ends when no event is left; the processor must
   then be `done`.
4. With a `ClientCost` (`sim/client.py`: the client program's serial CPU), each request
   first waits for the client thread to build it, and each completion for the thread to
   handle the response before the processor sees it; `makespan` runs to the last
   completion the processor saw.
5. With a `ServerCost` (the OpenAI API server's serial CPU), a request that has crossed
   the network waits for its server process (one for all workers, or one per worker) to
   parse and tokenize it before its engine sees it.
6. With `host_cores` (the CPU machine `validate_sim` runs on), the client's and servers'
   threads and the engines' steps share that many cores (`sim/host_cpu.py`, processor
   sharing; a step weighs `engine_threads` runnable threads); without, each has a core of
   its own (a GPU host), as above.

`simulate` runs one processor on fresh engines; a `Simulation` keeps its engines (and
their prefix caches and pins) for further runs, e.g. Trading's warm-up day, then the
measured day.

Deterministic: SimPy orders simultaneous events by scheduling order and nothing here
reads a clock or iterates an unordered container, so equal inputs give equal results.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import Any

import simpy

from helium_lab.backend import BackendResult, Processor, RunLedger
from helium_lab.processor.calls import CallResult, LLMCall, synthetic_completion
from helium_lab.tokenizer import SyntheticTokenizer, Tokenizer
from sim.client import ClientCost, ClientCPU, SerialCPU, ServerCost
from sim.client_loop import ClientLoop, PoolRequest
from sim.config import EngineConfig
from sim.cost_model import CostModel
from sim.engine import OutputSource, SimEngine
from sim.errors import SimError
from sim.host_cpu import CoreThread, SharedCores

SimResult = BackendResult
"""One processor run on simulated time (0 at the session's first run); see BackendResult."""


def simulate(proc: Processor, engines_config: Sequence[EngineConfig],
             cost_model: CostModel | Sequence[CostModel], *,
             tokenizer: Tokenizer | None = None, submit_overhead_s: float = 0.0,
             progress: bool = False, fast_decode: bool = True) -> SimResult:
    """Run `proc` to completion on fresh engines, one per entry of `engines_config`
    (worker w uses `engines_config[w]` and `cost_model[w]`, or one shared cost model)."""
    sim = Simulation(engines_config, cost_model, tokenizer=tokenizer,
                     submit_overhead_s=submit_overhead_s, fast_decode=fast_decode)
    return sim.run(proc, progress=progress)


class Simulation:
    """Engines whose caches and clock persist across runs (a warm-up batch, then a
    measured one): a `helium_lab.backend.Session` on simulated time. Construction has no
    side effects until `run`."""

    def __init__(self, engines_config: Sequence[EngineConfig],
                 cost_model: CostModel | Sequence[CostModel], *,
                 tokenizer: Tokenizer | None = None, submit_overhead_s: float = 0.0,
                 fast_decode: bool = True,
                 outputs: OutputSource = synthetic_completion,
                 client: ClientCost | None = None,
                 server: ServerCost | None = None,
                 host_cores: int | None = None, engine_threads: float = 1.0) -> None:
        if submit_overhead_s < 0:
            raise SimError(f"submit_overhead_s must be >= 0, got {submit_overhead_s}")
        if not engines_config:
            raise SimError("a simulation needs at least one engine config")
        if isinstance(cost_model, Sequence):
            costs = list(cost_model)
            if len(costs) != len(engines_config):
                raise SimError(f"{len(costs)} cost models for {len(engines_config)} engines")
        else:
            costs = [cost_model] * len(engines_config)
        self.env = simpy.Environment()
        self.tokenizer = tokenizer or SyntheticTokenizer()
        self.overhead = submit_overhead_s
        # the client's CPU: none (free), per call (ClientCPU), or its loop and pool
        pool = None if client is None else client.pool
        active = client is not None and (client.active or pool is not None)
        self.client = ClientCPU(client) if client is not None and active and pool is None else None
        self.server = server if server is not None and server.active else None
        n_servers = (0 if self.server is None else
                     len(engines_config) if self.server.scope == "per_worker" else 1)
        # the client's and servers' threads: each a core of its own (arithmetic on the
        # clock), or threads on the host's shared cores, as are the engines' steps then
        self.cores = None if host_cores is None else SharedCores(self.env, host_cores)
        self.server_cpus: list[SerialCPU] = []
        self.client_thread: CoreThread | None = None
        self.server_threads: list[CoreThread] = []
        if self.cores is None:
            self.server_cpus = [SerialCPU() for _ in range(n_servers)]
        else:
            self.client_thread = CoreThread(self.cores) if active else None
            self.server_threads = [CoreThread(self.cores) for _ in range(n_servers)]
        # the client's event loop and pool step by step (sim/client_loop.py)
        self.client_loop = (ClientLoop(self.env, client, pool,
                                       None if self.client_thread is None
                                       else self.client_thread.run)
                            if client is not None and pool is not None else None)
        self.engines = [SimEngine(self.env, cfg, costs[w], self.tokenizer, self._on_finish,
                                  worker=w, fast_decode=fast_decode,
                                  outputs=outputs, cores=self.cores,
                                  step_threads=engine_threads)
                        for w, cfg in enumerate(engines_config)]
        self._run: _Run | None = None

    def run(self, proc: Processor, *, progress: bool = False) -> SimResult:
        """Run `proc` to completion, continuing from the current simulated time."""
        self._run = _Run(self, proc, progress)
        try:
            return self._run.execute()
        finally:
            self._run = None

    @property
    def client_cpu_s(self) -> float:
        """CPU seconds the client process has spent so far (0 without a client stage)."""
        if self.client_thread is not None:
            return self.client_thread.busy_s
        if self.client_loop is not None:
            return self.client_loop.busy_s
        return 0.0 if self.client is None else self.client.busy_s

    def close(self) -> None:
        """Nothing to release: a simulation holds no processes or files."""

    def __enter__(self) -> Simulation:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _on_finish(self, result: CallResult) -> None:
        if self._run is None:
            raise SimError(f"call {result.call_id} finished outside a run")
        self._run.on_finish(result)


class _Run:
    """One processor run on simulated time: the shared ledger plus SimPy waiting."""

    def __init__(self, sim: Simulation, proc: Processor, progress: bool) -> None:
        self.sim = sim
        self.proc = proc
        self.env = sim.env
        self.ledger = RunLedger(proc, sim.engines, SimError, progress=progress,
                                desc="simulate")
        self.begin_t = self.start_t = sim.env.now
        self.last_seen = sim.env.now
        self.first_sample = [len(e.timeseries) for e in sim.engines]
        self.pool_requests: dict[int, PoolRequest] = {}  # call id -> its request

    def execute(self) -> SimResult:
        self.env.process(self._main())
        try:
            self.env.run()
        finally:
            self.ledger.close()
        series = {w: tuple(e.timeseries[self.first_sample[w]:])
                  for w, e in enumerate(self.sim.engines)}
        return self.ledger.result(series, begin_t=self.begin_t, start_t=self.start_t,
                                  last_t=self.last_seen)

    def _main(self) -> Generator[simpy.Event, Any, None]:
        waits = []
        for w, prefixes in sorted(self.proc.prewarm_prompts().items()):
            engine = self.ledger.engine(w, "prewarm")
            for prefix in prefixes:
                engine.prewarm(prefix)
            waits.append(engine.prewarmed())
        if waits:
            yield self.env.all_of(waits)
        self.start_t = self.env.now
        self._dispatch(self.proc.start())

    def on_finish(self, result: CallResult) -> None:
        self.ledger.finished(result)
        client, thread = self.sim.client, self.sim.client_thread
        if self.sim.client_loop is not None:
            req = self.pool_requests.pop(result.call_id)
            self.env.process(self._handle(result, self.sim.client_loop.answer(
                req, len(result.output_ids))))
            return
        if client is None:
            self._dispatch(self.proc.on_finished(result))
            return
        if thread is not None:
            seen: float | simpy.Event = thread.run(client.response_work(len(result.output_ids)))
        else:
            seen = client.response(self.env.now, len(result.output_ids))
        self.env.process(self._handle(result, seen))

    def _handle(self, result: CallResult,
                at: float | simpy.Event) -> Generator[simpy.Event, Any, None]:
        """Hand `result` to the processor at `at` (a time, or the event of its handling)."""
        yield at if isinstance(at, simpy.Event) else self.env.timeout(at - self.env.now)
        self.last_seen = max(self.last_seen, self.env.now)
        self._dispatch(self.proc.on_finished(result))

    def _dispatch(self, calls: list[LLMCall]) -> None:
        now = self.env.now
        client, server = self.sim.client, self.sim.server
        thread = self.sim.client_thread
        if self.sim.client_loop is not None:
            for engine, call in self.ledger.submitted(calls):
                req = self.sim.client_loop.request(call.prompt_tokens)
                self.pool_requests[call.call_id] = req
                self.env.process(self._send(engine, call, now, req.sent))
            return
        if self.sim.cores is not None:
            for engine, call in self.ledger.submitted(calls):
                built = (None if client is None or thread is None else
                         thread.run(client.request_work(call.prompt_tokens)))
                if built is None and server is None and self.sim.overhead == 0:
                    engine.submit(call, submit_t=now)
                else:
                    self.env.process(self._send(engine, call, now, built))
            return
        for engine, call in self.ledger.submitted(calls):
            delay = self.sim.overhead
            if client is not None:
                delay += client.request(now, call.prompt_tokens) - now
            if server is not None:  # arrivals come in dispatch order: FIFO holds
                cpu = self.sim.server_cpus[call.worker if len(self.sim.server_cpus) > 1
                                           else 0]
                delay = cpu.run(now + delay, server.request_s(call.prompt_tokens)) - now
            if delay > 0:
                self.env.process(self._deliver(engine, call, now, delay))
            else:
                engine.submit(call, submit_t=now)

    def _send(self, engine: SimEngine, call: LLMCall, emitted: float,
              built: simpy.Event | None) -> Generator[simpy.Event, Any, None]:
        """The client builds the request (`built`: on shared cores, or the event loop's
        start on a connection), it crosses the network, its server process takes it
        (arrival order), then its engine."""
        if built is not None:
            yield built
        if self.sim.overhead > 0:
            yield self.env.timeout(self.sim.overhead)
        server = self.sim.server
        if server is not None and self.sim.server_threads:
            threads = self.sim.server_threads
            yield threads[call.worker if len(threads) > 1 else 0].run(
                server.request_s(call.prompt_tokens))
        elif server is not None:  # a core of its own: arithmetic, arrivals in order
            cpus = self.sim.server_cpus
            cpu = cpus[call.worker if len(cpus) > 1 else 0]
            done = cpu.run(self.env.now, server.request_s(call.prompt_tokens))
            yield self.env.timeout(done - self.env.now)
        engine.submit(call, submit_t=emitted)

    def _deliver(self, engine: SimEngine, call: LLMCall, emitted: float,
                 delay: float) -> Generator[simpy.Event, Any, None]:
        yield self.env.timeout(delay)
        engine.submit(call, submit_t=emitted)
