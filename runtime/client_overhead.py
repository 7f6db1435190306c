"""Per-call CPU cost of the baselines' Python client stacks, measured against a mock server.

The OpenAI-API baselines (QueryWise/"vLLM", OpWise, LangGraph, KVFlow; docs/systems.md) run
one Python client process that sends every LLM call over HTTP to vLLM's OpenAI server;
Helium calls in-process engines. This benchmark measures what one call costs *the client
process* in CPU time — work that is serialized in that one process, whatever the engines do
— for three stacks, as the reference programs (HD `benchmark/bench_programs/`) build them:

- ``httpx``: a bare ``httpx.AsyncClient.post`` of the same JSON and ``response.json()``:
  the floor (HTTP/1.1 + JSON, no SDK);
- ``openai``: ``openai.AsyncOpenAI(http_client=httpx.AsyncClient(limits=unlimited))``,
  ``await client.chat.completions.create(...)`` per call, all calls as concurrent tasks
  (HD ``utils/openai.py``; OpWise, QueryWise);
- ``langgraph_mapred`` / ``langgraph_chain``: a compiled ``StateGraph`` whose nodes each
  ``await ChatOpenAI(...).ainvoke(messages)`` (langchain-openai over the same httpx limits,
  HD ``utils/langgraph.py``), run as ``await graph.abatch(items)`` with no
  ``max_concurrency`` (LangGraph, KVFlow). MapRed: ``k`` parallel experts then one
  summarizer per item, the state holding each expert's message list (HD
  ``map_reduce/langgraph.py``); chain: ``k + 1`` nodes in a line, each prompt carrying the
  previous answer.

The server is a minimal asyncio HTTP/1.1 server in a separate process on 127.0.0.1 that
answers ``POST /v1/chat/completions`` at once with a valid ``ChatCompletion`` whose content
has as many 4-character words as the request's ``max_tokens`` / ``max_completion_tokens``
(≈ one token each), plus ``usage``. Its CPU is not counted: only the client process's
``time.process_time()`` (user + system, all threads) is. Prompts are deterministic text of
≈ 4 characters per token. Three parts:

1. size grid (`run_grid`): every stack at every prompt/output size, one call (LangGraph:
   one item) in flight, so httpcore's pool holds one connection; fitted per stack as
   ``cpu_ms ≈ a + b * prompt_kchars + c * output_kchars`` (kchars = 1000 characters of
   message content sent / received per call, ≈ 250 tokens);
2. pool pass (`pool_pass_us`): CPU of one assignment pass of httpcore's connection pool
   with N connections, I of them idle, fitted as ``c0 + c_conn*N + c_idle*I + c_pair*N*I``
   — with the reference programs' unlimited pools this term grows with concurrency;
3. bursts (`run_bursts`): n calls sent at once on a warm pool, as ``abatch``/``gather``
   send a batch, compared with parts 1 + 2 given the passes, N and I recorded on the way.

Results go to ``conf/orchestration/client_overhead.json`` with the machine, host-speed
probes, versions, date and command.

    python -m runtime.client_overhead                  # full run (≈ 4 min on 2 cores)
    python -m runtime.client_overhead --quick --out /tmp/co.json   # smoke test

Needs the ``clients`` extra: ``pip install -e ".[clients]"``. docs/client_overhead.md
discusses the numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import gc
import json
import os
import platform
import random
import re
import resource
import select
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from helium_lab.optimizer.prompt_cache import package_versions

CHARS_PER_TOKEN = 4
MODEL = "mock-model"
SYSTEM_PROMPT = "You are a careful expert. Answer the question using the context."
UNLIMITED = 9999999  # HD utils/common.py
REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO_ROOT / "conf" / "orchestration" / "client_overhead.json"
KINDS = ("httpx", "openai", "langgraph_mapred", "langgraph_chain")
PACKAGES = ("httpx", "httpcore", "h11", "openai", "langchain-core", "langchain-openai",
            "langgraph", "langgraph-checkpoint", "pydantic", "pydantic-core", "orjson",
            "langsmith", "numpy")

# ---------------------------------------------------------------------------------------
# mock OpenAI-compatible server (separate process)
# ---------------------------------------------------------------------------------------

_MAX_TOKENS_RE = re.compile(rb'"max(?:_completion)?_tokens"\s*:\s*(\d+)')
_WORD = "tok "  # CHARS_PER_TOKEN characters: one word ≈ one token


def completion_payload(n_tokens: int, prompt_bytes: int) -> bytes:
    """A non-streaming chat.completion with `n_tokens` words of content."""
    content = (_WORD * n_tokens)[:-1]
    prompt_tokens = prompt_bytes // CHARS_PER_TOKEN
    obj = {
        "id": "chatcmpl-mock",
        "object": "chat.completion",
        "created": 1700000000,
        "model": MODEL,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content, "refusal": None},
            "logprobs": None,
            "finish_reason": "length",
        }],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": n_tokens,
                  "total_tokens": prompt_tokens + n_tokens},
    }
    return json.dumps(obj, separators=(",", ":")).encode()


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            method, path, _ = lines[0].split(b" ", 2)
            length, close = 0, False
            for line in lines[1:]:
                key, _, value = line.partition(b":")
                key = key.strip().lower()
                if key == b"content-length":
                    length = int(value)
                elif key == b"connection" and value.strip().lower() == b"close":
                    close = True
            body = await reader.readexactly(length) if length else b""
            if path.startswith(b"/hold/"):  # /hold/<ms>/...: answer late (pool benchmark)
                await asyncio.sleep(int(path.split(b"/")[2]) / 1e3)
            if method == b"POST" and path.split(b"?")[0].endswith(b"/chat/completions"):
                m = _MAX_TOKENS_RE.search(body)
                payload = completion_payload(int(m.group(1)) if m else 16, len(body))
                status = b"200 OK"
            else:
                payload, status = b'{"error":"not found"}', b"404 Not Found"
            writer.write(b"HTTP/1.1 " + status + b"\r\ncontent-type: application/json\r\n"
                         b"content-length: " + str(len(payload)).encode() + b"\r\n\r\n"
                         + payload)
            await writer.drain()
            if close:
                break
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        pass
    finally:
        writer.close()


def serve(parent_pid: int) -> None:
    """Server process: serve on a free port of 127.0.0.1, print the port, exit with the parent."""

    async def main() -> None:
        server = await asyncio.start_server(_handle, "127.0.0.1", 0, backlog=4096)
        print(server.sockets[0].getsockname()[1], flush=True)
        async with server:
            while os.getppid() == parent_pid:  # orphaned (parent killed): stop
                await asyncio.sleep(0.5)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())


@contextlib.contextmanager
def mock_server(timeout_s: float = 60.0) -> Iterator[str]:
    """Run the mock server in a child process; yields its base URL (``.../v1``).

    The child is ``python -m runtime.client_overhead --serve`` (a plain subprocess, so this
    works from any caller); it is terminated, then killed if need be, on every exit path."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "runtime.client_overhead", "--serve", str(os.getpid())],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], timeout_s)
        line = proc.stdout.readline() if ready else ""
        if not line.strip().isdigit():
            raise RuntimeError(f"mock server did not start within {timeout_s} s "
                               f"(exit code {proc.poll()})")
        yield f"http://127.0.0.1:{int(line)}/v1"
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


# ---------------------------------------------------------------------------------------
# workloads
# ---------------------------------------------------------------------------------------

_VOCAB = ("the", "market", "revenue", "growth", "of", "quarter", "analysts", "expect",
          "a", "strong", "decline", "in", "margins", "question:", "context", "table",
          "2024", "net", "income", "per", "share", "was", "reported", "as", "\"adjusted\"",
          "and", "operating", "cash", "flow", "increased", "by", "12.5%", "compared", "to",
          "prior", "year,", "while", "guidance", "remains", "unchanged.")


def prompt_text(n_tokens: int, seed: int = 0) -> str:
    """Deterministic prose of ≈ `n_tokens` * 4 characters, with quotes and newlines."""
    rng = random.Random(seed)
    target = n_tokens * CHARS_PER_TOKEN
    parts: list[str] = []
    size = 0
    while size < target:
        word = rng.choice(_VOCAB)
        sep = "\n" if rng.random() < 0.03 else " "
        parts.append(word + sep)
        size += len(word) + 1
    return "".join(parts)[:target]


@dataclass
class Tally:
    """Content characters sent and received by the client, counted in the driver."""

    calls: int = 0
    prompt_chars: int = 0
    output_chars: int = 0

    def add(self, messages_chars: int, output: str) -> None:
        self.calls += 1
        self.prompt_chars += messages_chars
        self.output_chars += len(output)


@dataclass
class _Sink:
    """Where a compiled graph's nodes count their calls (swapped per timed run)."""

    tally: Tally = field(default_factory=Tally)


@dataclass
class Sample:
    cpu_s: float
    user_s: float
    sys_s: float
    wall_s: float
    calls: int
    prompt_chars: int
    output_chars: int
    pool_connections: int


@dataclass
class Point:
    kind: str
    prompt_tokens: int
    output_tokens: int
    concurrency: str
    samples: list[Sample] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        calls = self.samples[0].calls

        def med(values: Any) -> float:
            return round(statistics.median(values), 4)

        return {
            "kind": self.kind,
            "prompt_tokens": self.prompt_tokens,
            "output_tokens": self.output_tokens,
            "concurrency": self.concurrency,
            "calls_per_repeat": calls,
            "prompt_kchars_per_call": round(self.samples[0].prompt_chars / calls / 1e3, 4),
            "output_kchars_per_call": round(self.samples[0].output_chars / calls / 1e3, 4),
            "cpu_ms_per_call": med(1e3 * s.cpu_s / s.calls for s in self.samples),
            "user_ms_per_call": med(1e3 * s.user_s / s.calls for s in self.samples),
            "sys_ms_per_call": med(1e3 * s.sys_s / s.calls for s in self.samples),
            "wall_ms_per_call": med(1e3 * s.wall_s / s.calls for s in self.samples),
            "cpu_ms_per_call_repeats": [round(1e3 * s.cpu_s / s.calls, 4)
                                        for s in self.samples],
            "pool_connections": max(s.pool_connections for s in self.samples),
        }


async def _gather_limited(coros: list[Awaitable[Any]], limit: int | None) -> list[Any]:
    if limit is None:
        return await asyncio.gather(*coros)
    sem = asyncio.Semaphore(limit)

    async def one(c: Awaitable[Any]) -> Any:
        async with sem:
            return await c

    return await asyncio.gather(*(one(c) for c in coros))


def _limits(keepalive_expiry: float | None = 5.0) -> Any:
    import httpx

    return httpx.Limits(max_connections=UNLIMITED, max_keepalive_connections=UNLIMITED,
                        keepalive_expiry=keepalive_expiry)


def _timeout() -> Any:
    import httpx

    return httpx.Timeout(timeout=6000, connect=60)


def _async_http(base_url: str, keepalive_expiry: float | None = 5.0) -> Any:
    """The reference programs' async client: no connection limit, 6000 s timeout."""
    import httpx

    return httpx.AsyncClient(base_url=base_url, timeout=_timeout(),
                             limits=_limits(keepalive_expiry))


def pool_of(http: Any) -> Any:
    """httpcore's AsyncConnectionPool behind an httpx.AsyncClient (private attributes)."""
    return http._transport._pool


class Driver:
    """One client stack over one httpx.AsyncClient (`http`): `run` sends the calls."""

    kind: str
    http: Any

    async def run(self, n_calls: int, prompt_tokens: int, output_tokens: int,
                  limit: int | None, tally: Tally) -> None:
        raise NotImplementedError

    def pool_connections(self) -> tuple[int, int]:
        """(connections, idle connections) in the client's pool now."""
        conns = pool_of(self.http).connections
        return len(conns), sum(1 for c in conns if c.is_idle())

    async def aclose(self) -> None:
        await self.http.aclose()


def _messages(prompt: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": prompt}]


class HttpxDriver(Driver):
    kind = "httpx"

    def __init__(self, base_url: str) -> None:
        self.http = _async_http(base_url)

    async def run(self, n_calls: int, prompt_tokens: int, output_tokens: int,
                  limit: int | None, tally: Tally) -> None:
        base = prompt_text(prompt_tokens)

        async def one(i: int) -> None:
            msgs = _messages(f"[{i}] {base}")
            resp = await self.http.post("/chat/completions", json={
                "model": MODEL, "messages": msgs, "temperature": 0,
                "max_tokens": output_tokens})
            resp.raise_for_status()
            out = resp.json()["choices"][0]["message"]["content"]
            tally.add(sum(len(m["content"]) for m in msgs), out)

        await _gather_limited([one(i) for i in range(n_calls)], limit)


class OpenAIDriver(Driver):
    kind = "openai"

    def __init__(self, base_url: str) -> None:
        from openai import AsyncOpenAI

        self.http = _async_http(base_url)
        self.client = AsyncOpenAI(api_key="EMPTY", base_url=base_url, http_client=self.http)

    async def run(self, n_calls: int, prompt_tokens: int, output_tokens: int,
                  limit: int | None, tally: Tally) -> None:
        base = prompt_text(prompt_tokens)

        async def one(i: int) -> None:
            msgs: Any = _messages(f"[{i}] {base}")
            resp = await self.client.chat.completions.create(
                model=MODEL, messages=msgs, temperature=0, max_tokens=output_tokens)
            out = resp.choices[0].message.content
            assert isinstance(out, str)
            tally.add(sum(len(m["content"]) for m in msgs), out)

        await _gather_limited([one(i) for i in range(n_calls)], limit)

    async def aclose(self) -> None:
        await self.client.close()


def _chars(messages: list[Any]) -> int:
    return sum(len(m.content) for m in messages)


class LangGraphDriver(Driver):
    """`shape` "mapred": `width` experts -> summarizer; "chain": `width` + 1 nodes in a line.

    Either way an item makes `width` + 1 LLM calls; items = n_calls // (width + 1). One
    ChatOpenAI per output length (the reference builds one per program), all on one pool."""

    def __init__(self, base_url: str, shape: str, width: int = 4) -> None:
        import httpx

        self.kind = f"langgraph_{shape}"
        self.base_url = base_url
        self.shape = shape
        self.width = width
        self.http = _async_http(base_url)
        self.sync_http = httpx.Client(base_url=base_url, timeout=_timeout(), limits=_limits())
        self._graphs: dict[int, tuple[Any, _Sink]] = {}

    def _llm(self, output_tokens: int) -> Any:
        from langchain_openai import ChatOpenAI
        from pydantic import SecretStr

        return ChatOpenAI(
            http_client=self.sync_http, http_async_client=self.http, model=MODEL,
            base_url=self.base_url, api_key=SecretStr("EMPTY"), temperature=0,
            max_completion_tokens=output_tokens, logprobs=False, streaming=False)

    def _graph(self, output_tokens: int) -> tuple[Any, _Sink]:
        if output_tokens not in self._graphs:
            sink = _Sink()
            build = self._build_mapred if self.shape == "mapred" else self._build_chain
            self._graphs[output_tokens] = (build(self._llm(output_tokens), sink), sink)
        return self._graphs[output_tokens]

    def _build_mapred(self, llm: Any, sink: _Sink) -> Any:
        from typing import Annotated, TypedDict

        from langchain_core.messages import BaseMessage, HumanMessage
        from langgraph.graph import START, StateGraph

        def put_context(left: list[list[BaseMessage]],
                        right: tuple[int, list[BaseMessage]] | list[list[BaseMessage]],
                        ) -> list[list[BaseMessage]]:
            if isinstance(right, list):
                return right
            idx, ctx = right
            return [*left[:idx], ctx, *left[idx + 1:]]

        # functional form: this module's `from __future__ import annotations` would leave
        # class-body annotations as strings that LangGraph cannot resolve here
        State = TypedDict("State", {  # noqa: UP013
            "item": int,
            "context": str,
            "expert_contexts": Annotated[list[list[BaseMessage]], put_context],
            "summarizer_context": list[BaseMessage],
        })

        def expert(idx: int) -> Callable[[State], Awaitable[dict[str, Any]]]:
            async def node(state: State) -> dict[str, Any]:
                ctx = [*state["expert_contexts"][idx],
                       HumanMessage(f"Expert {idx}, item {state['item']}.\n{state['context']}")]
                resp = await llm.ainvoke(ctx)
                sink.tally.add(_chars(ctx), resp.content)
                return {"expert_contexts": (idx, [*ctx, resp])}

            return node

        async def summarize(state: State) -> dict[str, Any]:
            text = f"Summarize the experts' answers.\n\nContext: {state['context']}\n"
            for i, ctx in enumerate(state["expert_contexts"]):
                text += f"\nExpert {i + 1} Answer:\n{ctx[-1].content}"
            ctx = [*state["summarizer_context"], HumanMessage(text)]
            resp = await llm.ainvoke(ctx)
            sink.tally.add(_chars(ctx), resp.content)
            return {"summarizer_context": [*ctx, resp]}

        builder: Any = StateGraph(State)
        builder.add_node("summarizer", summarize)
        for i in range(self.width):
            builder.add_node(f"expert_{i}", expert(i))
            builder.add_edge(START, f"expert_{i}")
            builder.add_edge(f"expert_{i}", "summarizer")
        return builder.compile()

    def _build_chain(self, llm: Any, sink: _Sink) -> Any:
        from typing import TypedDict

        from langchain_core.messages import HumanMessage, SystemMessage
        from langgraph.graph import START, StateGraph

        State = TypedDict("State", {  # noqa: UP013
            "item": int, "context": str, "answers": list[str]})

        def step(idx: int) -> Callable[[State], Awaitable[dict[str, Any]]]:
            async def node(state: State) -> dict[str, Any]:
                prev = state["answers"][-1] if state["answers"] else ""
                ctx = [SystemMessage(SYSTEM_PROMPT),
                       HumanMessage(f"Step {idx}, item {state['item']}.\n{state['context']}"
                                    f"\n\nPrevious answer:\n{prev}")]
                resp = await llm.ainvoke(ctx)
                sink.tally.add(_chars(ctx), resp.content)
                return {"answers": [*state["answers"], resp.content]}

            return node

        builder: Any = StateGraph(State)
        prev = START
        for i in range(self.width + 1):
            builder.add_node(f"step_{i}", step(i))
            builder.add_edge(prev, f"step_{i}")
            prev = f"step_{i}"
        return builder.compile()

    async def run(self, n_calls: int, prompt_tokens: int, output_tokens: int,
                  limit: int | None, tally: Tally) -> None:
        from langchain_core.messages import SystemMessage

        graph, sink = self._graph(output_tokens)
        sink.tally = tally
        base = prompt_text(prompt_tokens)
        items = max(1, n_calls // (self.width + 1))
        if self.shape == "mapred":
            inputs: list[dict[str, Any]] = [{
                "item": i, "context": base,
                "expert_contexts": [[SystemMessage(SYSTEM_PROMPT)] for _ in range(self.width)],
                "summarizer_context": [SystemMessage(SYSTEM_PROMPT)],
            } for i in range(items)]
        else:
            inputs = [{"item": i, "context": base, "answers": []} for i in range(items)]
        # `limit` counts LLM calls in flight; LangGraph's max_concurrency counts items
        per_item = self.width if self.shape == "mapred" else 1
        config = None if limit is None else {"max_concurrency": max(1, limit // per_item)}
        await graph.abatch(inputs, config=config)

    async def aclose(self) -> None:
        await self.http.aclose()
        self.sync_http.close()
        self._graphs.clear()


# ---------------------------------------------------------------------------------------
# measurement
# ---------------------------------------------------------------------------------------


async def measure(driver: Driver, n_calls: int, prompt_tokens: int, output_tokens: int,
                  limit: int | None) -> Sample:
    tally = Tally()
    gc.collect()
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    c0, w0 = time.process_time(), time.perf_counter()
    await driver.run(n_calls, prompt_tokens, output_tokens, limit, tally)
    c1, w1 = time.process_time(), time.perf_counter()
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    if tally.calls == 0:
        raise RuntimeError(f"{driver.kind}: no call completed")
    return Sample(cpu_s=c1 - c0, user_s=r1.ru_utime - r0.ru_utime,
                  sys_s=r1.ru_stime - r0.ru_stime, wall_s=w1 - w0, calls=tally.calls,
                  prompt_chars=tally.prompt_chars, output_chars=tally.output_chars,
                  pool_connections=driver.pool_connections()[0])


async def pool_stats(driver: Driver, n_calls: int, prompt_tokens: int, output_tokens: int,
                     limit: int | None) -> dict[str, float]:
    """Run once (untimed), recording each of the pool's assignment passes: passes per
    call and the pool's mean connections N, idle connections I and N*I at a pass."""
    pool = pool_of(driver.http)
    original = pool._assign_requests_to_connections
    seen: list[tuple[int, int]] = []

    def recorded() -> Any:
        conns = pool._connections
        seen.append((len(conns), sum(1 for c in conns if c.is_idle())))
        return original()

    pool._assign_requests_to_connections = recorded
    tally = Tally()
    try:
        await driver.run(n_calls, prompt_tokens, output_tokens, limit, tally)
    finally:
        del pool._assign_requests_to_connections
    arr = np.array(seen, dtype=float).reshape(-1, 2)
    return {
        "pool_passes_per_call": round(len(seen) / max(1, tally.calls), 3),
        "pool_mean_connections": round(float(arr[:, 0].mean()), 2) if len(seen) else 0.0,
        "pool_mean_idle": round(float(arr[:, 1].mean()), 2) if len(seen) else 0.0,
        "pool_mean_conn_x_idle": round(float((arr[:, 0] * arr[:, 1]).mean()), 1)
        if len(seen) else 0.0,
    }


def pool_model_ms(f: dict[str, float], stats: dict[str, float]) -> float:
    """Pool bookkeeping CPU per call predicted by the pass model from `pool_stats`."""
    per_pass_us = (f["c0_us"] + f["c_conn_us"] * stats["pool_mean_connections"]
                   + f["c_idle_us"] * stats["pool_mean_idle"]
                   + f["c_pair_us"] * stats["pool_mean_conn_x_idle"])
    return stats["pool_passes_per_call"] * per_pass_us / 1e3


def _r2(y: np.ndarray, pred: np.ndarray) -> float:
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    return round(1.0 - float(np.sum((y - pred) ** 2)) / ss_tot, 4) if ss_tot > 0 else 1.0


def fit_sizes(points: list[dict[str, Any]]) -> dict[str, float]:
    """Least squares cpu_ms = a + b * prompt_kchars + c * output_kchars over `points`."""
    x = np.array([[1.0, p["prompt_kchars_per_call"], p["output_kchars_per_call"]]
                  for p in points])
    y = np.array([p["cpu_ms_per_call"] for p in points])
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    pred = x @ coef
    return {
        "a_ms": round(float(coef[0]), 4),
        "b_ms_per_prompt_kchar": round(float(coef[1]), 4),
        "c_ms_per_output_kchar": round(float(coef[2]), 4),
        "r2": _r2(y, pred),
        "max_abs_residual_ms": round(float(np.max(np.abs(y - pred))), 4),
        "points": len(points),
    }


def orchestration_keys(size_fits: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """The size fits as `system.orchestration` keys (helium_lab.config.Orchestration):
    seconds per call, per prompt token and per output token at CHARS_PER_TOKEN characters
    a token; a negative coefficient (below this machine's noise) becomes 0. The fixed
    part is `a_ms`, pool share included (one connection: ~0.04 ms)."""
    per_token_s = CHARS_PER_TOKEN / 1000 / 1000  # (ms per kchar) -> (s per token)
    return {kind: {
        "client_call_s": round(f["a_ms"] / 1000, 7),
        "client_prompt_token_s": float(f"{max(0.0, f['b_ms_per_prompt_kchar']) * per_token_s:.3g}"),
        "client_output_token_s": float(f"{max(0.0, f['c_ms_per_output_kchar']) * per_token_s:.3g}"),
    } for kind, f in size_fits.items()}


def predict_sizes(f: dict[str, float], prompt_kchars: float, output_kchars: float) -> float:
    return (f["a_ms"] + f["b_ms_per_prompt_kchar"] * prompt_kchars
            + f["c_ms_per_output_kchar"] * output_kchars)


# ---------------------------------------------------------------------------------------
# httpcore pool micro-benchmark
# ---------------------------------------------------------------------------------------


def _assign_only(pool: Any) -> list[Any]:
    """The second half of httpcore 1.0's `_assign_requests_to_connections` (hand queued
    requests a connection, new if none is available) without its cleanup loop, whose
    quadratic cost would make building a large pool for `pool_pass_us` take minutes.
    Nothing needs cleaning there: no connection expires (keepalive_expiry None) and
    keep-alive is unlimited."""
    for request in [r for r in pool._requests if r.is_queued()]:
        origin = request.request.url.origin
        available = [c for c in pool._connections
                     if c.can_handle_request(origin) and c.is_available()]
        if available:
            request.assign_to_connection(available[0])
        else:
            conn = pool.create_connection(origin)
            pool._connections.append(conn)
            request.assign_to_connection(conn)
    return []


async def pool_pass_us(base_url: str, n_conn: int, n_idle: int, min_cpu_s: float) -> float:
    """CPU µs of one `_assign_requests_to_connections` pass of httpcore's pool holding
    `n_conn` open connections, `n_idle` of them idle (the rest busy on held requests)."""
    root = base_url.removesuffix("/v1")
    http = _async_http(root, keepalive_expiry=None)  # idle ones must not expire meanwhile
    body = {"model": MODEL, "messages": _messages("x"), "max_tokens": 1}
    pool = pool_of(http)
    pool._assign_requests_to_connections = lambda: _assign_only(pool)
    # every request is in flight at once (so each has its own connection); the first
    # n_idle are answered after a while, leaving their connections idle
    release_ms = 1500 + 3 * n_conn
    quick = [asyncio.create_task(http.post(f"/hold/{release_ms}/v1/chat/completions",
                                           json=body)) for _ in range(n_idle)]
    held = [asyncio.create_task(http.post("/hold/600000/v1/chat/completions", json=body))
            for _ in range(n_conn - n_idle)]
    try:
        await asyncio.gather(*quick)
        while sum(1 for c in pool.connections if not c.is_idle()) < len(held):
            await asyncio.sleep(0.01)
        del pool._assign_requests_to_connections
        conns = pool.connections
        idle = sum(1 for c in conns if c.is_idle())
        if (len(conns), idle) != (n_conn, n_idle):
            raise RuntimeError(f"pool has {len(conns)} connections, {idle} idle; wanted "
                               f"{n_conn}, {n_idle}")
        passes = 0
        c0 = time.process_time()
        while True:
            if pool._assign_requests_to_connections():
                raise RuntimeError("the pool closed connections during the benchmark")
            passes += 1
            spent = time.process_time() - c0
            if spent >= min_cpu_s and passes >= 3:
                break
        return 1e6 * spent / passes
    finally:  # cancelling a held request triggers passes too: keep them cheap
        pool._assign_requests_to_connections = lambda: _assign_only(pool)
        for t in [*quick, *held]:
            t.cancel()
        await asyncio.gather(*quick, *held, return_exceptions=True)
        await http.aclose()


def fit_pool(points: list[dict[str, Any]]) -> dict[str, float]:
    """pass_us = c0 + c_conn * N + c_idle * I + c_pair * N * I (N connections, I idle),
    least squares on relative errors (the points span three decades)."""
    x = np.array([[1.0, p["connections"], p["idle"], p["connections"] * p["idle"]]
                  for p in points], dtype=float)
    y = np.array([p["pass_us"] for p in points])
    coef, *_ = np.linalg.lstsq(x / y[:, None], np.ones_like(y), rcond=None)  # relative
    pred = x @ coef
    return {
        "c0_us": round(float(coef[0]), 4),
        "c_conn_us": round(float(coef[1]), 5),
        "c_idle_us": round(float(coef[2]), 5),
        "c_pair_us": round(float(coef[3]), 7),
        "r2": _r2(y, pred),
        "max_rel_residual": round(float(np.max(np.abs(y - pred) / y)), 4),
        "points": len(points),
    }


# ---------------------------------------------------------------------------------------
# driver
# ---------------------------------------------------------------------------------------


def _make_driver(kind: str, base_url: str, width: int) -> Driver:
    if kind == "httpx":
        return HttpxDriver(base_url)
    if kind == "openai":
        return OpenAIDriver(base_url)
    return LangGraphDriver(base_url, kind.removeprefix("langgraph_"), width)


def _log(msg: str) -> None:
    print(msg, flush=True)


async def run_grid(base_url: str, args: argparse.Namespace,
                   ) -> tuple[list[dict[str, Any]], dict[str, dict[str, float]]]:
    """Every kind at every (prompt, output) size, at most `limit` calls in flight,
    `repeats` timed runs each; kinds and sizes interleaved (order reversed every other
    repeat) so that drift in the machine's speed spreads over all points. Each kind also
    gets one untimed run recording its pool's passes (`pool_stats`)."""
    grid = [(p, o) for p in args.prompt_tokens for o in args.output_tokens]
    drivers = [_make_driver(kind, base_url, args.width) for kind in args.kinds]
    stats: dict[str, dict[str, float]] = {}
    points = {(d.kind, p, o): Point(d.kind, p, o, str(args.limit))
              for d in drivers for p, o in grid}
    try:
        for d in drivers:
            for o in args.output_tokens:  # warm: open connections, build graphs
                await measure(d, args.calls, args.prompt_tokens[0], o, args.limit)
            stats[d.kind] = await pool_stats(d, args.calls, args.burst_prompt,
                                             args.burst_output, args.limit)
        runs = [(d, p, o) for p, o in grid for d in drivers]
        for rep in range(args.repeats):
            for d, p, o in (runs if rep % 2 == 0 else runs[::-1]):
                points[d.kind, p, o].samples.append(
                    await measure(d, args.calls, p, o, args.limit))
            _log(f"  grid repeat {rep + 1}/{args.repeats} done")
    finally:
        for d in drivers:
            await d.aclose()
    results = [pt.summary() for pt in points.values()]
    for r in results:
        _log(f"  {r['kind']:17s} prompt {r['prompt_tokens']:5d} tok  output "
             f"{r['output_tokens']:4d} tok  cpu {r['cpu_ms_per_call']:7.3f} ms/call  "
             f"wall {r['wall_ms_per_call']:7.3f} ms/call")
    return results, stats


async def run_bursts(base_url: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Per kind and burst size n: n calls sent at once (as the reference programs send a
    batch) on a pool warmed by an identical, instrumented burst (`pool_stats`)."""
    results: list[dict[str, Any]] = []
    p, o = args.burst_prompt, args.burst_output
    for kind in args.burst_kinds:
        driver = _make_driver(kind, base_url, args.width)
        try:
            for n in args.bursts:
                await measure(driver, n, p, o, None)  # warm
                stats = await pool_stats(driver, n, p, o, None)
                pt = Point(kind, p, o, "all")
                for _ in range(args.burst_repeats):
                    pt.samples.append(await measure(driver, n, p, o, None))
                s = {**pt.summary(), "burst": n, **stats}
                results.append(s)
                _log(f"  {kind:17s} burst {n:5d}  cpu {s['cpu_ms_per_call']:7.3f} ms/call  "
                     f"wall {s['wall_ms_per_call']:7.3f} ms/call  pool "
                     f"{s['pool_connections']} conns  "
                     f"{s['pool_passes_per_call']:.2f} passes/call")
        finally:
            await driver.aclose()
    return results


async def run_pool(base_url: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    results = []
    for n in args.pool_sizes:
        for frac in (0.0, 0.5, 1.0):
            idle = int(n * frac)
            us = statistics.median([await pool_pass_us(base_url, n, idle, args.pool_cpu_s)
                                    for _ in range(args.pool_repeats)])
            results.append({"connections": n, "idle": idle, "pass_us": round(us, 3)})
            _log(f"  pool pass  {n:5d} connections  {idle:5d} idle  {us:10.1f} µs")
    return results


def calibrate(seconds: float = 0.3) -> dict[str, float]:
    """Host-speed probes, to compare this machine with another one by rerunning them:
    a pure-Python call loop, a zero-timeout poll() syscall on a socket, and JSON of an
    8000-token request body."""
    import socket

    def per_op_ns(op: Callable[[], object], batch: int) -> float:
        best = float("inf")
        for _ in range(5):
            n, c0 = 0, time.process_time()
            while time.process_time() - c0 < seconds / 5:
                for _ in range(batch):
                    op()
                n += batch
            best = min(best, 1e9 * (time.process_time() - c0) / n)
        return round(best, 1)

    class Obj:
        def __init__(self) -> None:
            self.state = 1

        def is_idle(self) -> bool:
            return self.state == 1

    objs = [Obj() for _ in range(1000)]
    a, b = socket.socketpair()
    poller = select.poll()
    poller.register(a, select.POLLIN)
    body = {"model": MODEL, "messages": _messages(prompt_text(8000)), "max_tokens": 512}
    text = json.dumps(body)
    try:
        return {
            "python_listcomp_is_idle_ns_per_element": round(per_op_ns(
                lambda: [o.is_idle() for o in objs], 10) / len(objs), 2),
            "poll_syscall_ns": per_op_ns(lambda: poller.poll(0), 1000),
            "getpeername_syscall_ns": per_op_ns(a.getpeername, 1000),
            "json_dumps_8k_token_body_us": round(per_op_ns(lambda: json.dumps(body), 10)
                                                 / 1e3, 2),
            "json_loads_8k_token_body_us": round(per_op_ns(lambda: json.loads(text), 10)
                                                 / 1e3, 2),
        }
    finally:
        a.close()
        b.close()


async def run_benchmark(base_url: str, args: argparse.Namespace) -> dict[str, Any]:
    _log("host probes")
    probes = {"start": calibrate()}
    _log("  " + json.dumps(probes["start"]))
    _log(f"sizes: {args.calls} calls per run, at most {args.limit} in flight")
    grid, grid_pool = await run_grid(base_url, args)
    size_fits = {k: fit_sizes([r for r in grid if r["kind"] == k]) for k in args.kinds}
    pool: list[dict[str, Any]] = []
    pool_fit: dict[str, float] | None = None
    if args.pool_sizes:
        _log("httpcore pool pass")
        pool = await run_pool(base_url, args)
        pool_fit = fit_pool(pool)
    for kind, f in size_fits.items():
        f.update(grid_pool[kind])
        if pool_fit is not None:
            f["pool_model_ms"] = round(pool_model_ms(pool_fit, grid_pool[kind]), 4)
            f["a_ex_pool_ms"] = round(f["a_ms"] - f["pool_model_ms"], 4)
    bursts: list[dict[str, Any]] = []
    if args.bursts:
        _log("bursts")
        bursts = await run_bursts(base_url, args)
        for b in bursts:
            sf = size_fits.get(b["kind"])
            if sf is not None:
                b["size_model_ms"] = round(predict_sizes(
                    sf, b["prompt_kchars_per_call"], b["output_kchars_per_call"]), 4)
            if pool_fit is not None:
                b["pool_model_ms"] = round(pool_model_ms(pool_fit, b), 4)
            if sf is not None and pool_fit is not None:
                b["model_ms"] = round(b["size_model_ms"] - sf["pool_model_ms"]
                                      + b["pool_model_ms"], 4)
    probes["end"] = calibrate()
    _log("host probes at the end: " + json.dumps(probes["end"]))
    return {"host_probes": probes, "grid": grid, "size_fits": size_fits,
            "pool_passes": pool, "pool_fit": pool_fit, "bursts": bursts}


def machine_info() -> dict[str, Any]:
    info = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        info = f.read()

    def field_(name: str) -> str | None:
        m = re.search(rf"^{name}\s*:\s*(.+)$", info, re.M)
        return m.group(1).strip() if m else None

    versions = package_versions(*PACKAGES)
    mhz = field_("cpu MHz")
    return {
        "cpu_model": field_("model name"),
        "cpu_family": field_("cpu family"),
        "cpu_model_number": field_("model"),
        "cpu_mhz_reported": float(mhz) if mhz else None,
        "virtualized": " hypervisor" in info,
        "logical_cpus": os.cpu_count(),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "event_loop": "asyncio default selector loop (no uvloop)",
        "versions": versions,
    }


def render_table(report: dict[str, Any]) -> str:
    lines = [f"per-call client CPU, at most {report['settings']['grid_limit']} calls in flight",
             "kind               prompt_tok  output_tok  prompt_kch  output_kch  "
             "cpu_ms/call  user   sys  wall_ms/call"]
    for r in report["grid"]:
        lines.append(
            f"{r['kind']:18s} {r['prompt_tokens']:10d} {r['output_tokens']:11d} "
            f"{r['prompt_kchars_per_call']:11.2f} {r['output_kchars_per_call']:11.2f} "
            f"{r['cpu_ms_per_call']:12.3f} {r['user_ms_per_call']:5.2f} "
            f"{r['sys_ms_per_call']:5.2f} {r['wall_ms_per_call']:12.3f}")
    lines += ["", "fit: cpu_ms/call = a + b*prompt_kchars + c*output_kchars "
              "(pool_ms: the part of a that the pool model attributes to httpcore's pool)",
              "kind               a_ms     b_ms/kch  c_ms/kch  r2      max|res|_ms  pool_ms"]
    for kind, f in report["size_fits"].items():
        lines.append(f"{kind:18s} {f['a_ms']:7.3f}  {f['b_ms_per_prompt_kchar']:8.4f}  "
                     f"{f['c_ms_per_output_kchar']:8.4f}  {f['r2']:6.3f}  "
                     f"{f['max_abs_residual_ms']:7.3f}  {f.get('pool_model_ms', 0):7.3f}")
    if report["pool_passes"]:
        pf = report["pool_fit"]
        lines += ["", "httpcore pool pass: connections  idle  pass_us"]
        lines += [f"  {r['connections']:10d} {r['idle']:5d} {r['pass_us']:10.1f}"
                  for r in report["pool_passes"]]
        lines.append(f"fit: pass_us = {pf['c0_us']:.2f} + {pf['c_conn_us']:.4f}*N + "
                     f"{pf['c_idle_us']:.4f}*I + {pf['c_pair_us']:.6f}*N*I  (r2 {pf['r2']})")
    if report["bursts"]:
        lines += ["", "bursts (n calls at once, warm pool)",
                  "kind               n   cpu_ms/call  wall_ms/call  model_ms  pool_ms  "
                  "passes/call  mean_N  mean_I"]
        for r in report["bursts"]:
            lines.append(f"{r['kind']:17s} {r['burst']:4d} {r['cpu_ms_per_call']:12.3f} "
                         f"{r['wall_ms_per_call']:13.3f} {r.get('model_ms', 0):9.3f} "
                         f"{r.get('pool_model_ms', 0):8.3f} {r['pool_passes_per_call']:12.2f} "
                         f"{r['pool_mean_connections']:7.1f} {r['pool_mean_idle']:7.1f}")
    return "\n".join(lines)


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def _kinds(text: str) -> list[str]:
    kinds = [k for k in text.split(",") if k]
    bad = [k for k in kinds if k not in KINDS]
    if bad:
        raise argparse.ArgumentTypeError(f"unknown {bad}; choose from {', '.join(KINDS)}")
    return kinds


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m runtime.client_overhead",
                                 description="Per-call CPU cost of the baselines' client "
                                             "stacks (docs/client_overhead.md).")
    ap.add_argument("--calls", type=int, default=250, help="LLM calls per timed grid run")
    ap.add_argument("--limit", type=int, default=1,
                    help="grid: most calls in flight (LangGraph: items, see run())")
    ap.add_argument("--repeats", type=int, default=4, help="timed runs per grid point")
    ap.add_argument("--prompt-tokens", type=_ints, default=[200, 2000, 8000])
    ap.add_argument("--output-tokens", type=_ints, default=[64, 512])
    ap.add_argument("--kinds", type=_kinds, default=list(KINDS))
    ap.add_argument("--width", type=int, default=4,
                    help="LangGraph: experts per MapRed item / chain length - 1")
    ap.add_argument("--pool-sizes", type=_ints, default=[16, 64, 256, 1024],
                    help="pool micro-benchmark: connections (idle 0, half, all)")
    ap.add_argument("--pool-cpu-s", type=float, default=0.2)
    ap.add_argument("--pool-repeats", type=int, default=2)
    ap.add_argument("--bursts", type=_ints, default=[32, 64, 128],
                    help="burst runs: calls sent at once")
    ap.add_argument("--burst-kinds", type=_kinds, default=["httpx", "openai",
                                                           "langgraph_mapred"])
    ap.add_argument("--burst-repeats", type=int, default=3)
    ap.add_argument("--burst-prompt", type=int, default=2000)
    ap.add_argument("--burst-output", type=int, default=512)
    ap.add_argument("--quick", action="store_true", help="smoke test (≈ 30 s)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args(argv)
    if args.quick:
        args.calls, args.repeats = 100, 1
        args.prompt_tokens, args.output_tokens = [200, 2000], [64, 512]
        args.pool_sizes, args.pool_repeats, args.pool_cpu_s = [16, 64], 1, 0.02
        args.bursts, args.burst_repeats = [16, 32], 1
    return args


def main(argv: list[str] | None = None) -> int:
    argv_ = sys.argv[1:] if argv is None else argv
    if argv_[:1] == ["--serve"]:  # the mock server's own process (see mock_server)
        serve(int(argv_[1]))
        return 0
    args = parse_args(argv_)
    os.environ.setdefault("LANGSMITH_TRACING", "false")  # no tracing, as in HD's runs
    info = machine_info()
    started = datetime.datetime.now(datetime.UTC)
    t0 = time.perf_counter()
    with mock_server() as base_url:
        _log(f"mock server at {base_url}; client pid {os.getpid()}")
        measured = asyncio.run(run_benchmark(base_url, args))
    report = {
        "what": ("CPU time of the client process per LLM call for the baselines' Python "
                 "client stacks, against an instant mock OpenAI server in another process "
                 "(runtime/client_overhead.py, docs/client_overhead.md). cpu = "
                 "time.process_time (user+sys, all threads); medians over repeats."),
        "size_fit_model": "cpu_ms_per_call = a_ms + b_ms_per_prompt_kchar * prompt_kchars "
                          "+ c_ms_per_output_kchar * output_kchars (message content "
                          "characters per call; 1 kchar ~ 250 tokens), at most grid_limit "
                          "calls in flight",
        "pool_fit_model": "CPU µs per httpcore AsyncConnectionPool assignment pass = c0 + "
                          "c_conn*N + c_idle*I + c_pair*N*I, N connections, I idle; "
                          "about 2-3 passes per call (bursts: pool_passes_per_call)",
        "date": started.isoformat(timespec="seconds"),
        "command": " ".join(["python -m runtime.client_overhead", *argv_]),
        "duration_s": round(time.perf_counter() - t0, 1),
        "machine": info,
        "settings": {
            "grid_calls_per_run": args.calls, "grid_limit": args.limit,
            "repeats": args.repeats, "prompt_tokens": args.prompt_tokens,
            "output_tokens": args.output_tokens, "chars_per_token": CHARS_PER_TOKEN,
            "langgraph_width": args.width, "pool_sizes": args.pool_sizes,
            "bursts": args.bursts, "burst_repeats": args.burst_repeats,
            "burst_prompt_tokens": args.burst_prompt,
            "burst_output_tokens": args.burst_output,
        },
        **measured,
        "orchestration_keys_this_machine": orchestration_keys(measured["size_fits"]),
    }
    _log("")
    _log(render_table(report))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    _log(f"\nwrote {args.out} ({report['duration_s']} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
