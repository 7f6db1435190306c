"""The shortest-queue balancer of the reference (EngineClientController) as a transport."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from runtime.programs.balancer import ShortestQueueTransport

URLS = ["http://127.0.0.1:1001/v1", "http://127.0.0.1:1002/v1", "http://127.0.0.1:1003/v1"]


def _server(gates: dict[str, asyncio.Event], seen: list[tuple[str, int]]) -> httpx.MockTransport:
    async def handle(request: httpx.Request) -> httpx.Response:
        rid = json.loads(request.content)["request_id"]
        seen.append((rid, int(request.url.port or 0)))
        await gates[rid].wait()
        return httpx.Response(200, json={"id": rid, "prompt_token_ids": [int(rid[1:])]})

    return httpx.MockTransport(handle)


def test_requests_go_to_the_server_with_fewest_in_flight() -> None:
    """Three servers: r0, r1, r2 spread over them in index order (ties to the lowest);
    once r1 finishes, server 1 is the least loaded and takes r3; bodies are kept by
    request id with the server that answered, once."""

    async def scenario() -> None:
        gates = {f"r{i}": asyncio.Event() for i in range(5)}
        seen: list[tuple[str, int]] = []
        tr = ShortestQueueTransport(URLS, inner=_server(gates, seen))
        async with httpx.AsyncClient(transport=tr) as client:
            def post(rid: str) -> asyncio.Task[httpx.Response]:
                return asyncio.create_task(client.post(URLS[0] + "/chat/completions",
                                                       json={"request_id": rid}))

            tasks = {rid: post(rid) for rid in ("r0", "r1", "r2")}
            await asyncio.sleep(0.01)
            assert tr.in_flight == [1, 1, 1]
            gates["r1"].set()
            await tasks["r1"]
            assert tr.in_flight == [1, 0, 1]
            tasks["r3"] = post("r3")
            await asyncio.sleep(0.01)
            tasks["r4"] = post("r4")  # all tied at 1: the lowest index
            await asyncio.sleep(0.01)
            assert [p for _, p in seen] == [1001, 1002, 1003, 1002, 1001]
            for g in gates.values():
                g.set()
            replies = {rid: await t for rid, t in tasks.items()}
        assert tr.in_flight == [0, 0, 0] and tr.served == [2, 2, 1]
        assert replies["r3"].json()["id"] == "r3"
        assert tr.take("r3") == (1, {"id": "r3", "prompt_token_ids": [3]})
        assert tr.take("r3") is None

    asyncio.run(scenario())


def test_a_failed_request_leaves_no_count_behind() -> None:
    async def scenario() -> None:
        def refuse(request: httpx.Request) -> httpx.Response:
            raise httpx.ConnectError("refused", request=request)

        tr = ShortestQueueTransport(URLS[:2], inner=httpx.MockTransport(refuse))
        async with httpx.AsyncClient(transport=tr) as client:
            with pytest.raises(httpx.ConnectError):
                await client.post(URLS[0] + "/chat/completions", json={"request_id": "x"})
        assert tr.in_flight == [0, 0] and tr.take("x") is None

    asyncio.run(scenario())


def test_no_servers_is_an_error() -> None:
    with pytest.raises(ValueError, match="no server"):
        ShortestQueueTransport([])
