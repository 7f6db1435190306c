"""Timed runs of the drivers: one run (`measure`), its pool passes (`pool_stats`), and the
three parts of the benchmark (`run_grid`, `run_pool`, `run_bursts`); `send_side` reads
where within a call a client program spends its CPU from a recording mock's arrivals.

Contract: every function takes the mock server's base URL (or a driver built on it) and
returns plain numbers or JSON-ready rows; CPU is the client process's
``time.process_time()``; progress goes to stdout through `log`.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import resource
import statistics
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from runtime.client_overhead.drivers import (
    Driver,
    HttpxDriver,
    LangGraphDriver,
    OpenAIChainDriver,
    OpenAIDriver,
    pool_of,
)
from runtime.client_overhead.pool import pool_pass_us
from runtime.client_overhead.workloads import Point, Sample, Tally


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


@contextlib.contextmanager
def recorded_passes(driver: Driver) -> Iterator[list[tuple[int, int, int]]]:
    """Within the block, every assignment pass of `driver`'s httpcore pool appends the
    pool's (connections, idle connections, requests) at that pass to the yielded list; the
    requests are those the pool holds, queued for a connection or on one."""
    pool = pool_of(driver.http)
    original = pool._assign_requests_to_connections
    seen: list[tuple[int, int, int]] = []

    def recorded() -> Any:
        conns = pool._connections
        seen.append((len(conns), sum(1 for c in conns if c.is_idle()), len(pool._requests)))
        return original()

    pool._assign_requests_to_connections = recorded
    try:
        yield seen
    finally:
        del pool._assign_requests_to_connections


async def pool_stats(driver: Driver, n_calls: int, prompt_tokens: int, output_tokens: int,
                     limit: int | None) -> dict[str, float]:
    """Run once (untimed), recording each of the pool's assignment passes: passes per
    call and the pool's mean connections N, idle connections I and N*I at a pass."""
    tally = Tally()
    with recorded_passes(driver) as seen:
        await driver.run(n_calls, prompt_tokens, output_tokens, limit, tally)
    arr = np.array(seen, dtype=float).reshape(-1, 3)
    return {
        "pool_passes_per_call": round(len(seen) / max(1, tally.calls), 3),
        "pool_mean_connections": round(float(arr[:, 0].mean()), 2) if len(seen) else 0.0,
        "pool_mean_idle": round(float(arr[:, 1].mean()), 2) if len(seen) else 0.0,
        "pool_mean_conn_x_idle": round(float((arr[:, 0] * arr[:, 1]).mean()), 1)
        if len(seen) else 0.0,
    }


def make_driver(kind: str, base_url: str, width: int) -> Driver:
    if kind == "httpx":
        return HttpxDriver(base_url)
    if kind == "openai":
        return OpenAIDriver(base_url)
    if kind == "openai_chain":
        return OpenAIChainDriver(base_url, width)
    return LangGraphDriver(base_url, kind.removeprefix("langgraph_"), width)


def log(msg: str) -> None:
    print(msg, flush=True)


async def run_grid(base_url: str, args: argparse.Namespace,
                   ) -> tuple[list[dict[str, Any]], dict[str, dict[str, float]]]:
    """Every kind at every (prompt, output) size, at most `limit` calls in flight,
    `repeats` timed runs each; kinds and sizes interleaved (order reversed every other
    repeat) so that drift in the machine's speed spreads over all points. Each kind also
    gets one untimed run recording its pool's passes (`pool_stats`)."""
    grid = [(p, o) for p in args.prompt_tokens for o in args.output_tokens]
    drivers = [make_driver(kind, base_url, args.width) for kind in args.kinds]
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
            log(f"  grid repeat {rep + 1}/{args.repeats} done")
    finally:
        for d in drivers:
            await d.aclose()
    results = [pt.summary() for pt in points.values()]
    for r in results:
        log(f"  {r['kind']:17s} prompt {r['prompt_tokens']:5d} tok  output "
             f"{r['output_tokens']:4d} tok  cpu {r['cpu_ms_per_call']:7.3f} ms/call  "
             f"wall {r['wall_ms_per_call']:7.3f} ms/call")
    return results, stats


async def run_bursts(base_url: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Per kind and burst size n: n calls sent at once (as the reference programs send a
    batch) on a pool warmed by an identical, instrumented burst (`pool_stats`)."""
    results: list[dict[str, Any]] = []
    p, o = args.burst_prompt, args.burst_output
    for kind in args.burst_kinds:
        driver = make_driver(kind, base_url, args.width)
        try:
            for n in args.bursts:
                await measure(driver, n, p, o, None)  # warm
                stats = await pool_stats(driver, n, p, o, None)
                pt = Point(kind, p, o, "all")
                for _ in range(args.burst_repeats):
                    pt.samples.append(await measure(driver, n, p, o, None))
                s = {**pt.summary(), "burst": n, **stats}
                results.append(s)
                log(f"  {kind:17s} burst {n:5d}  cpu {s['cpu_ms_per_call']:7.3f} ms/call  "
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
            log(f"  pool pass  {n:5d} connections  {idle:5d} idle  {us:10.1f} µs")
    return results



FLUSH_GAP_S = 0.02  # arrivals closer than this to the one before belong to the first flush


def send_side(arrivals: list[tuple[float, float]], cpu_start_s: float, calls: int,
              cpu_ms_per_call: float, hold_s: float) -> dict[str, float]:
    """The send side of a call from a run against a recording mock (`mock_server(...,
    record_arrivals=True)`): `arrivals` (server clock s, client CPU s) oldest first,
    `cpu_start_s` the client's CPU when the run began, `calls` and `cpu_ms_per_call` the
    run's, `hold_s` the mock's hold.

    A program given a burst of ready calls builds every request before any leaves (its
    connections open only when the event loop gets round to them), then the built ones
    leave together: the first flush, arrivals each within `FLUSH_GAP_S` of the one before.
    So `send_ms` = the client's CPU from the run's start to the first arrival over the
    flush's calls; `share` = send_ms / cpu_ms_per_call. Also: `window_calls`, the arrivals
    before the first answer can leave (first arrival + `hold_s`), and `window_cpu_s`, the
    client's CPU between the first and last of them (sending what was built costs little)."""
    if not arrivals:
        raise ValueError("send_side: the mock noted no arrivals (was it recording?)")
    if calls <= 0 or cpu_ms_per_call <= 0:
        raise ValueError(f"send_side: calls ({calls}) and cpu_ms_per_call "
                         f"({cpu_ms_per_call}) must be > 0")
    t0 = arrivals[0][0]
    flush = 1
    while flush < len(arrivals) and arrivals[flush][0] - arrivals[flush - 1][0] < FLUSH_GAP_S:
        flush += 1
    window = [a for a in arrivals if a[0] < t0 + hold_s]
    pre_s = arrivals[0][1] - cpu_start_s
    send_ms = 1e3 * pre_s / flush
    return {"flush_calls": float(flush), "flush_wall_ms": 1e3 * (arrivals[flush - 1][0] - t0),
            "window_calls": float(len(window)), "window_cpu_s": window[-1][1] - window[0][1],
            "pre_cpu_s": pre_s, "send_ms": send_ms, "share": send_ms / cpu_ms_per_call}
