"""The client drivers: one per client stack, each over one ``httpx.AsyncClient``.

Contract: `Driver.run(n_calls, prompt_tokens, output_tokens, limit, tally)` sends
`n_calls` chat calls (at most `limit` in flight; None: all at once) through its stack and
counts each in `tally`; `pool_connections()` reads the httpcore pool behind it (`pool_of`,
private httpx/httpcore attributes). The client libraries (httpx, openai, langchain-openai,
langgraph: the ``clients`` extra) are imported only when a driver is built.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from runtime.client_overhead.workloads import (
    MODEL,
    SYSTEM_PROMPT,
    Tally,
    messages,
    prompt_text,
)

UNLIMITED = 9999999  # HD utils/common.py


@dataclass
class _Sink:
    """Where a compiled graph's nodes count their calls (swapped per timed run)."""

    tally: Tally = field(default_factory=Tally)


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


def async_http(base_url: str, keepalive_expiry: float | None = 5.0) -> Any:
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


class HttpxDriver(Driver):
    kind = "httpx"

    def __init__(self, base_url: str) -> None:
        self.http = async_http(base_url)

    async def run(self, n_calls: int, prompt_tokens: int, output_tokens: int,
                  limit: int | None, tally: Tally) -> None:
        base = prompt_text(prompt_tokens)

        async def one(i: int) -> None:
            msgs = messages(f"[{i}] {base}")
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

        self.http = async_http(base_url)
        self.client = AsyncOpenAI(api_key="EMPTY", base_url=base_url, http_client=self.http)

    async def run(self, n_calls: int, prompt_tokens: int, output_tokens: int,
                  limit: int | None, tally: Tally) -> None:
        base = prompt_text(prompt_tokens)

        async def one(i: int) -> None:
            await self.complete(f"[{i}] {base}", output_tokens, tally)

        await _gather_limited([one(i) for i in range(n_calls)], limit)

    async def complete(self, prompt: str, output_tokens: int, tally: Tally) -> str:
        """One chat call with `prompt` as the user message, counted in `tally`."""
        msgs: Any = messages(prompt)
        resp = await self.client.chat.completions.create(
            model=MODEL, messages=msgs, temperature=0, max_tokens=output_tokens)
        out = resp.choices[0].message.content
        assert isinstance(out, str)
        tally.add(sum(len(m["content"]) for m in msgs), out)
        return out

    async def aclose(self) -> None:
        await self.client.close()


class OpenAIChainDriver(OpenAIDriver):
    """OpWise's pattern (HD `utils/opwise.py`: a stage per op, a task per item as it
    arrives): items gathered, each item's `width` + 1 calls one after another, each prompt
    carrying the previous answer."""

    kind = "openai_chain"

    def __init__(self, base_url: str, width: int = 4) -> None:
        super().__init__(base_url)
        self.width = width

    async def run(self, n_calls: int, prompt_tokens: int, output_tokens: int,
                  limit: int | None, tally: Tally) -> None:
        base = prompt_text(prompt_tokens)
        length = self.width + 1

        async def item(i: int) -> None:
            answer = ""
            for step in range(length):
                out = await self.complete(f"[{i}.{step}] {base}{answer}", output_tokens, tally)
                answer = " " + out

        await _gather_limited([item(i) for i in range(max(1, n_calls // length))], limit)


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
        self.http = async_http(base_url)
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
