"""One grid point against a running server: requests, and CPU of each server process.

Contract: `ServerProcs.of(server)` names the server's processes by role (``api_server``:
the process `VllmServer` started; ``engine_core`` and ``worker``: vLLM's children by their
process titles; ``other``: the rest, e.g. multiprocessing's resource tracker).
`cpu_snapshot` reads user + system CPU seconds of each role and of every API-server thread
(grouped by thread name). `run_point` (async) sends `len(bodies)` non-streaming chat completions
with at most `concurrency` in flight on one `httpx.AsyncClient`, checks every answer
(HTTP 200, ``usage.prompt_tokens`` = the point's prompt length, ``completion_tokens`` =
``max_tokens``) and returns CPU seconds per request of each role, per API-server thread
group, of this (client) process, and wall time. `idle_rate` is the API server's CPU
seconds per second while no request is in flight.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil

from runtime.serve import VllmServer

ROLES = ("api_server", "engine_core", "worker", "other")


@dataclass
class ServerProcs:
    by_role: dict[str, list[psutil.Process]]

    @staticmethod
    def of(server: VllmServer) -> ServerProcs:
        roles: dict[str, list[psutil.Process]] = {r: [] for r in ROLES}
        for p in server.processes():
            name = p.name()
            role = ("api_server" if p.pid == server.pid else "engine_core"
                    if "EngineCor" in name else "worker" if "Worker" in name else "other")
            roles[role].append(p)
        if not roles["api_server"] or not roles["engine_core"]:
            raise RuntimeError(f"server_overhead: expected an API server and an engine-core "
                               f"process under pid {server.pid}, found "
                               f"{[(p.pid, p.name()) for p in server.processes()]}")
        return ServerProcs(roles)


def _cpu(p: psutil.Process) -> float:
    t = p.cpu_times()
    return float(t.user + t.system)


def _thread_name(pid: int, tid: int) -> str:
    try:
        return Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip()
    except OSError:
        return "?"


def cpu_snapshot(procs: ServerProcs) -> dict[str, Any]:
    roles = {r: sum(_cpu(p) for p in ps) for r, ps in procs.by_role.items()}
    api = procs.by_role["api_server"][0]
    threads: dict[str, float] = defaultdict(float)
    for t in api.threads():
        threads[_thread_name(api.pid, t.id)] += t.user_time + t.system_time
    return {"roles": roles, "api_threads": dict(threads), "client": time.process_time(),
            "wall": time.perf_counter()}


def delta_per_request(a: dict[str, Any], b: dict[str, Any], n: int) -> dict[str, Any]:
    threads = {k: (v - a["api_threads"].get(k, 0.0)) / n for k, v in b["api_threads"].items()}
    return {
        **{f"{r}_cpu_per_request_s": (b["roles"][r] - a["roles"][r]) / n for r in ROLES},
        "api_threads_cpu_per_request_s": {k: v for k, v in threads.items() if v > 0},
        "client_cpu_per_request_s": (b["client"] - a["client"]) / n,
        "wall_s": b["wall"] - a["wall"],
    }


async def _send(client: httpx.AsyncClient, url: str, bodies: list[dict[str, Any]],
                concurrency: int, prompt_tokens: int) -> None:
    sem = asyncio.Semaphore(concurrency)

    async def one(body: dict[str, Any]) -> None:
        async with sem:
            r = await client.post(url, json=body)
        if r.status_code != 200:
            raise RuntimeError(f"server_overhead: {url} answered {r.status_code}: "
                               f"{r.text[:500]}")
        usage = r.json()["usage"]
        if (usage["prompt_tokens"], usage["completion_tokens"]) != (prompt_tokens,
                                                                    body["max_tokens"]):
            raise RuntimeError(f"server_overhead: expected {prompt_tokens} prompt and "
                               f"{body['max_tokens']} completion tokens, server counted "
                               f"{usage}")

    await asyncio.gather(*(one(b) for b in bodies))


async def run_point(client: httpx.AsyncClient, server: VllmServer, procs: ServerProcs,
                    bodies: list[dict[str, Any]], concurrency: int,
                    prompt_tokens: int) -> dict[str, Any]:
    """Send `bodies` (keep-alive connections of `client` are reused across points) and
    return CPU per request by role and API-server thread, client CPU and wall time."""
    url = f"{server.base_url}/chat/completions"
    before = cpu_snapshot(procs)
    await _send(client, url, bodies, concurrency, prompt_tokens)
    after = cpu_snapshot(procs)
    return delta_per_request(before, after, len(bodies))


def new_client(concurrency: int) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    return httpx.AsyncClient(limits=limits, timeout=600)


def idle_rate(procs: ServerProcs, seconds: float) -> float:
    """API-server CPU seconds per wall second with nothing in flight."""
    api = procs.by_role["api_server"][0]
    c0, t0 = _cpu(api), time.perf_counter()
    time.sleep(seconds)
    return (_cpu(api) - c0) / (time.perf_counter() - t0)
