"""A session of vLLM OpenAI API servers (one per worker) that runs a system's own client
program: `helium_lab.backend.Session` for baselines whose reference program talks HTTP.

    with ServerSession(ModelSettings("tiny"), engine, 2, program="langgraph",
                       log_dir=run_dir) as s:
        result = s.run(proc)     # the system's QueryProcessor (or a proxy of one), built
                                 # with SystemConfig.processor(ns, program_runs=True)

- Servers: `runtime.serve.VllmServer` per worker (loopback, a free port, health-checked,
  logs in `log_dir/server_<w>/`), started concurrently, with the engine arguments the
  in-process engines get, plus `--enable-prompt-tokens-details` (cached-token counts per
  response) and vLLM's stats logging on (its `/metrics` gauges are sampled below).
- `run(proc)`: prewarm prompts (if the system has any) go to their worker's server as
  one-token completions of the prefix's token ids, then the client program (registry
  `PROGRAMS`: langgraph, querywise, opwise; `runtime/programs/`) runs the batch, taking
  each call from the processor (`CallBroker`) and sending it through the reference's
  shortest-queue balancer (`ShortestQueueTransport`). `max_output_tokens` caps calls as
  the in-process session does.
- Times are seconds since the session opened (the wall clock: measurement only). Records:
  send and receive per call (`start_t` = send, `first_token_t` = receive: HTTP does not see
  the engine's scheduling), vLLM's cached tokens, the server that answered as `worker`.
  `timeseries`: each server's `/metrics` sampled every `sample_interval_s` while it has
  requests (running, waiting, KV usage; `batched_tokens` is not exported: 0), from a thread
  of its own (`runtime.metrics_sampler`: a task of the program's event loop is starved
  while requests pile up in the pool), each sample lasting until the next poll. A sample is
  a glimpse, not a step: the tiny model on a shared CPU runs its engine steps in bursts
  between which the API server answers `/metrics`, so a short run may catch no busy
  moment and leave the series empty. The exact per-step counts come from vLLM's histogram
  of tokens per step: `num_steps` and `step_tokens` in `stats`. `stats` per
  server: requests served, vLLM's prefix-cache counters over the run, and its calls whose
  prompt the server tokenized differently from the planner (`prompt_mismatches`: 0 on the
  five test workflows with the tiny tokenizer; Trading's research manager differs) or whose
  reply text differs from its decoded token ids (`output_mismatches`: vLLM's incremental
  detokenizer at split UTF-8 sequences; the program keeps the decoded ids, as the
  in-process engines do), and CPU seconds over the run of its API-server process, of its
  engine processes (`engine_cpu_s`; of which its engine core's and its worker's,
  `engine_core_cpu_s` and `worker_cpu_s`), and of this (client) process (`api_server_cpu_s`,
  `client_cpu_s`: the client's is the whole process's but the sampler thread's, the same in
  every server's entry), and how many `/metrics` polls it answered (`metrics_polls`: the
  mean-batch samples' density).
- Errors: a server that fails to start stops the others and raises `ServerStartError`; a
  failed request (a server died, a timeout) raises `RuntimeBackendError` with the server's
  log tail; Ctrl-C propagates. `close()` (or leaving the `with` block) stops every server
  process tree (`VllmServer.stop`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
from tqdm import tqdm

from helium_lab.backend import BackendResult, Processor
from helium_lab.config import EngineSettings, ModelSettings
from helium_lab.errors import ConfigError
from helium_lab.processor.capping import capped
from helium_lab.processor.query_processor import QueryProcessor
from runtime.errors import RuntimeBackendError
from runtime.metrics_sampler import MetricsSampler
from runtime.model import resolve_model
from runtime.programs.balancer import ShortestQueueTransport
from runtime.programs.base import ClientProgram
from runtime.programs.broker import CallBroker
from runtime.programs.langgraph_program import LangGraphProgram
from runtime.programs.openai_programs import OpWiseProgram, QueryWiseProgram
from runtime.serve import VllmServer, log_tail
from runtime.tokenizer import HFTokenizer

# program -> (its class, the client library it calls through)
PROGRAMS: dict[str, tuple[type[ClientProgram], str]] = {
    "langgraph": (LangGraphProgram, "langchain"),
    "querywise": (QueryWiseProgram, "openai"),
    "opwise": (OpWiseProgram, "openai")}
# helium_demo utils/common.py: DEFAULT_TIMEOUT (6000 s, connect 60 s), DEFAULT_LIMITS
# (max_connections and max_keepalive_connections 9999999: unlimited)
HTTP_TIMEOUT = httpx.Timeout(timeout=6000, connect=60)
HTTP_LIMITS = httpx.Limits(max_connections=9_999_999, max_keepalive_connections=9_999_999)
SERVER_FLAGS = ("--enable-prompt-tokens-details",)
METRIC_KEYS = {"vllm:num_requests_running": "running", "vllm:num_requests_waiting": "waiting",
               "vllm:kv_cache_usage_perc": "kv_usage",
               "vllm:prefix_cache_queries_total": "queries",
               "vllm:prefix_cache_hits_total": "hits",
               # the histogram of tokens per engine step: one observation per step
               "vllm:iteration_tokens_total_count": "steps",
               "vllm:iteration_tokens_total_sum": "step_tokens"}


class ServerSession:
    """vLLM API servers driven by a system's client program (see the module docstring)."""

    def __init__(self, model: ModelSettings, engine: EngineSettings, num_workers: int, *,
                 program: str, log_dir: Path, seed: int = 0,
                 max_output_tokens: int | None = None, sample_interval_s: float = 0.25,
                 startup_timeout_s: float = 600.0,
                 request_timeout_s: float | None = None) -> None:
        """`request_timeout_s`: ChatOpenAI's per-request timeout (None: none, as in the
        reference: its ChatOpenAI passes `timeout=None` to the OpenAI client, which
        overrides the 6000 s of its httpx client); a request past it fails the run after
        the OpenAI client's retries (2, its default, as in the reference)."""
        if program not in PROGRAMS:
            raise ConfigError(f"system.program: unknown client program {program!r}; known: "
                              f"{sorted(PROGRAMS)}")
        if num_workers < 1:
            raise ConfigError(f"num_workers must be >= 1, got {num_workers}")
        if max_output_tokens is not None and max_output_tokens < 1:
            raise ConfigError(f"max_output_tokens must be >= 1, got {max_output_tokens}")
        self.program = program
        logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per request
        self.max_output_tokens = max_output_tokens
        self.sample_interval_s = sample_interval_s
        self.request_timeout_s = request_timeout_s
        self.info = resolve_model(model)
        self._tok = HFTokenizer.from_dir(self.info.path)
        self.origin = time.monotonic()
        self.servers = [VllmServer(self.info.path, Path(log_dir) / f"server_{w}",
                                   engine=engine, seed=seed, model_name=model.name,
                                   startup_timeout_s=startup_timeout_s,
                                   extra_args=SERVER_FLAGS, log_stats=True)
                        for w in range(num_workers)]
        self._closed = False
        try:
            with ThreadPoolExecutor(num_workers) as pool:
                for fut in [pool.submit(s.start) for s in self.servers]:
                    fut.result()
        except BaseException:
            self.close()
            raise
        self.startup_s = self.clock()

    def clock(self) -> float:
        return time.monotonic() - self.origin

    @property
    def tokenizer(self) -> HFTokenizer:
        return self._tok

    def run(self, proc: Processor, *, progress: bool = False) -> BackendResult:
        """Run `proc`'s batch through the client program against the servers."""
        if self._closed:
            raise RuntimeBackendError("run() on a closed server session")
        planner: Any = proc
        while not isinstance(planner, QueryProcessor):  # under processor proxies
            planner = getattr(planner, "inner", None)
            if planner is None:
                raise ConfigError("system.program runs a QueryProcessor's workflow (or a "
                                  f"proxy of one); got {type(proc).__name__}")
        return asyncio.run(self._run(planner, capped(proc, self.max_output_tokens), progress))

    async def _run(self, proc: QueryProcessor, driven: Processor, progress: bool
                   ) -> BackendResult:
        """`proc`: the workflow's processor (graph, queries, issued calls); `driven`: the
        same, under the proxies whose calls the program sends (the cap among them)."""
        begin = self.clock()
        metrics = httpx.AsyncClient(timeout=30)
        try:
            return await self._run_with(proc, driven, progress, metrics, begin)
        finally:
            await metrics.aclose()

    async def _run_with(self, proc: QueryProcessor, driven: Processor, progress: bool,
                        metrics: httpx.AsyncClient, begin: float) -> BackendResult:
        import openai

        before = [await self._metrics(metrics, s) for s in self.servers]
        cpu_before, client_before = [cpu_seconds(s) for s in self.servers], time.process_time()
        await self._prewarm(proc)
        start = self.clock()
        transport = ShortestQueueTransport([s.base_url for s in self.servers],
                                           limits=HTTP_LIMITS)
        client = httpx.AsyncClient(transport=transport, timeout=HTTP_TIMEOUT)
        cls, library = PROGRAMS[self.program]
        model, url = self.servers[0].model_name, self.servers[0].base_url
        bar = tqdm(desc=f"run ({self.program})", unit="call", disable=not progress)
        broker = CallBroker(driven, lambda: proc.issued)
        program = cls(proc.graph, broker,
                      library_client(library, client, model, url, self.request_timeout_s),
                      transport, self._tok, self.clock, model=model,
                      on_progress=lambda: bar.update(1))
        sampler = MetricsSampler([_metrics_url(s) for s in self.servers], self.clock,
                                 self.sample_interval_s, parse_metrics)
        sampler.start()
        try:
            ran = await program.run(proc.plan.size)
        except (httpx.HTTPError, openai.APIError) as e:
            raise self._request_failed(e) from None
        finally:
            sampler.stop()
            bar.close()
            await client.aclose()
        if not proc.done:
            raise RuntimeBackendError(f"the {self.program} program ended with calls left: "
                                      f"{proc.stuck()}")
        after = [await self._metrics(metrics, s) for s in self.servers]
        cpu = [{k: v - cpu_before[w].get(k, 0.0) for k, v in cpu_seconds(s).items()}
               for w, s in enumerate(self.servers)]
        client_cpu = time.process_time() - client_before - sampler.cpu_s
        stats = {w: {"requests_served": float(transport.served[w]),
                     "prefix_cache_queries": after[w].get("queries", 0.0)
                     - before[w].get("queries", 0.0),
                     "prefix_cache_hits": after[w].get("hits", 0.0) - before[w].get("hits", 0.0),
                     "num_steps": after[w].get("steps", 0.0) - before[w].get("steps", 0.0),
                     "step_tokens": after[w].get("step_tokens", 0.0)
                     - before[w].get("step_tokens", 0.0),
                     "prompt_mismatches": float(ran.prompt_mismatches[w]),
                     "output_mismatches": float(ran.output_mismatches[w]),
                     "metrics_polls": float(sampler.polled[w]),
                     **cpu[w], "client_cpu_s": client_cpu}
                 for w in range(len(self.servers))}
        last = max((r.finish_t for r in ran.records), default=start)
        return BackendResult(tuple(ran.records),
                             {w: tuple(x) for w, x in sampler.samples.items()},
                             stats, begin, start, last - begin)

    async def _prewarm(self, proc: QueryProcessor) -> None:
        prompts = proc.prewarm_prompts()
        if not prompts:
            return
        async with httpx.AsyncClient(timeout=HTTP_TIMEOUT) as client:
            await asyncio.gather(*(
                client.post(f"{self.servers[w].base_url}/completions",
                            json={"model": self.servers[w].model_name, "prompt": list(ids),
                                  "max_tokens": 1, "temperature": 0})
                for w, prefixes in prompts.items() for ids in prefixes))

    @staticmethod
    async def _metrics(client: httpx.AsyncClient, server: VllmServer) -> dict[str, float]:
        return parse_metrics((await client.get(_metrics_url(server))).text)

    def _request_failed(self, e: Exception) -> RuntimeBackendError:
        dead = [s for s in self.servers if not s.running]
        about = "; ".join(f"server {self.servers.index(s)} exited, log tail:\n"
                          f"{log_tail(s.log_path)}" for s in dead)
        return RuntimeBackendError(f"a request of the {self.program} program failed "
                                   f"({type(e).__name__}: {e}){'; ' + about if about else ''}")

    def close(self) -> None:
        self._closed = True
        for s in self.servers:
            with contextlib.suppress(Exception):
                s.stop()

    def __enter__(self) -> ServerSession:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def library_client(library: str, http: httpx.AsyncClient, model: str, url: str,
                   timeout_s: float | None = None) -> Any:
    """The program's client library over `http` (helium_demo utils/langgraph.py,
    utils/openai.py): "langchain" a ChatOpenAI, else an AsyncOpenAI; `timeout_s` None keeps
    each library's reference timeout (ChatOpenAI: none; AsyncOpenAI: the http client's)."""
    if library == "langchain":
        from langchain_openai import ChatOpenAI

        return ChatOpenAI(http_async_client=http, model=model, base_url=url,
                          api_key="EMPTY", temperature=0,  # type: ignore[arg-type]
                          timeout=timeout_s)
    from openai import AsyncOpenAI

    if timeout_s is None:  # the reference: the http client's 6000 s
        return AsyncOpenAI(api_key="EMPTY", base_url=url, http_client=http)
    return AsyncOpenAI(api_key="EMPTY", base_url=url, http_client=http, timeout=timeout_s)


def cpu_seconds(server: VllmServer) -> dict[str, float]:
    """CPU seconds (user + system) used so far by the server's API-server process and by
    its descendants (`engine_cpu_s`), and of those, vLLM's engine core and its worker
    process apart (`engine_core_cpu_s`, `worker_cpu_s`: named by the titles vLLM gives
    them, `VLLM::EngineCore` and `VLLM::Worker...`; helpers with neither title count in
    `engine_cpu_s` only)."""
    import psutil

    out = {"api_server_cpu_s": 0.0, "engine_cpu_s": 0.0, "engine_core_cpu_s": 0.0,
           "worker_cpu_s": 0.0}
    for i, p in enumerate(server.processes()):
        with contextlib.suppress(psutil.Error):
            t = p.cpu_times()
            if i == 0:
                out["api_server_cpu_s"] += t.user + t.system
                continue
            out["engine_cpu_s"] += t.user + t.system
            role = engine_process_role(p.name() + " " + " ".join(p.cmdline()))
            if role is not None:
                out[f"{role}_cpu_s"] += t.user + t.system
    return out


def _metrics_url(server: VllmServer) -> str:
    return server.base_url.removesuffix("/v1") + "/metrics"


def engine_process_role(title: str) -> str | None:
    """`engine_core` or `worker` for a vLLM engine process by its title (name and command
    line), None for any other process."""
    if "EngineCore" in title:
        return "engine_core"
    if "Worker" in title:
        return "worker"
    return None


def parse_metrics(text: str, keys: dict[str, str] | None = None) -> dict[str, float]:
    """Prometheus text -> {short name: value summed over label sets} for `keys`."""
    keys = METRIC_KEYS if keys is None else keys
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name = line.split("{", 1)[0].split(" ", 1)[0]
        short = keys.get(name)
        if short is not None:
            with contextlib.suppress(ValueError):
                out[short] = out.get(short, 0.0) + float(line.rsplit(" ", 1)[1])
    return out

