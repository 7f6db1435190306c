"""The httpcore connection-pool micro-benchmark and its fit.

Contract: `pool_pass_us(base_url, N, I, min_cpu_s)` is the CPU µs of one assignment pass
of httpcore's ``AsyncConnectionPool`` holding N open connections, I of them idle, against
the mock server; `fit_pool` fits ``pass_us = c0 + c_conn*N + c_idle*I + c_pair*N*I`` to
such points. Relies on httpcore 1.0's private pool attributes.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np

from runtime.client_overhead.drivers import async_http, pool_of
from runtime.client_overhead.fits import r2
from runtime.client_overhead.workloads import MODEL, messages


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
    http = async_http(root, keepalive_expiry=None)  # idle ones must not expire meanwhile
    body = {"model": MODEL, "messages": messages("x"), "max_tokens": 1}
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
        "r2": r2(y, pred),
        "max_rel_residual": round(float(np.max(np.abs(y - pred) / y)), 4),
        "points": len(points),
    }

