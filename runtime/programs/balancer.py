"""The reference's load balancer as an httpx transport: each request goes to the server
with the fewest requests in flight.

helium_demo's API server fronts its engines with `EngineClientController`
(`src/helium/runtime/utils/vllm/engine/controller.py`, dispatch `shortest_queue`): a
request goes to the engine with the fewest requests in flight (numpy `argmin`: ties to the
lowest index), counted from dispatch until its output generator ends. Here the engines are
separate `vllm` API servers, so the same rule sits in the client's HTTP transport: the
request's host and port are rewritten to the chosen server's, and the request counts as in
flight until its response body has arrived (non-streaming chat completions only).

The transport also keeps each JSON response body by the request body's `request_id`
(`take`), with the index of the server that answered: vLLM's extra response fields
(`prompt_token_ids`, `token_ids`) that the OpenAI client libraries drop.

Contract: `ShortestQueueTransport(base_urls)` with at least one URL; `in_flight` and
`served` count per server; it never reads a clock. One event loop only (asyncio, no locks).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from typing import Any

import httpx

_BODY_HEADERS = {"content-encoding", "content-length", "transfer-encoding"}


class ShortestQueueTransport(httpx.AsyncBaseTransport):
    """Routes each request to the least-loaded of `base_urls` (see the module docstring)."""

    def __init__(self, base_urls: Sequence[str], *, limits: httpx.Limits | None = None,
                 inner: httpx.AsyncBaseTransport | None = None) -> None:
        """`limits`: the connection pool's (the reference's: unlimited); `inner`: the
        transport that sends (tests give a mock; default a pooled HTTP transport)."""
        if not base_urls:
            raise ValueError("ShortestQueueTransport: no server URL given")
        self.urls = [httpx.URL(u) for u in base_urls]
        self.in_flight = [0] * len(self.urls)
        self.served = [0] * len(self.urls)
        self._bodies: dict[str, tuple[int, dict[str, Any]]] = {}
        self._inner = inner or httpx.AsyncHTTPTransport(limits=limits or httpx.Limits())

    def pick(self) -> int:
        """The server with the fewest requests in flight; ties to the lowest index."""
        return min(range(len(self.urls)), key=self.in_flight.__getitem__)

    def take(self, request_id: str) -> tuple[int, dict[str, Any]] | None:
        """(server index, parsed JSON body) of the response to `request_id`, once."""
        return self._bodies.pop(request_id, None)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        i = self.pick()
        target = self.urls[i]
        request.url = request.url.copy_with(scheme=target.scheme, host=target.host,
                                            port=target.port)
        request.headers["host"] = f"{target.host}:{target.port}"
        self.in_flight[i] += 1
        self.served[i] += 1
        try:
            response = await self._inner.handle_async_request(request)
            body = await response.aread()
        finally:
            self.in_flight[i] -= 1
        rid = _request_id(request)
        if rid is not None and response.status_code == 200:
            with contextlib.suppress(ValueError):
                self._bodies[rid] = (i, json.loads(body))
        headers = [(k, v) for k, v in response.headers.multi_items()
                   if k.lower() not in _BODY_HEADERS]  # the body is handed on decoded
        return httpx.Response(status_code=response.status_code, headers=headers,
                              content=body, extensions=response.extensions)

    async def aclose(self) -> None:
        await self._inner.aclose()


def _request_id(request: httpx.Request) -> str | None:
    try:
        body = json.loads(request.content or b"{}")
    except ValueError:
        return None
    rid = body.get("request_id") if isinstance(body, dict) else None
    return rid if isinstance(rid, str) else None
