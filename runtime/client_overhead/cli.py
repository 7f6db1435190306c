"""The command line: host probes, the whole benchmark, the report and its table.

Contract: `main(argv)` is ``python -m runtime.client_overhead``: it starts the mock
server (`mock_server`), runs every part (`run_benchmark`), prints `render_table` and
writes the JSON report (default `DEFAULT_OUT`, ``conf/orchestration/client_overhead.json``);
``main(["--serve", PID])`` is the mock server's own process instead.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import os
import platform
import re
import select
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from helium_lab.io import atomic_write_text
from helium_lab.optimizer.prompt_cache import package_versions
from runtime.client_overhead.fits import (
    fit_sizes,
    orchestration_keys,
    pool_model_ms,
    predict_sizes,
)
from runtime.client_overhead.measure import log, run_bursts, run_grid, run_pool
from runtime.client_overhead.mock_server import SERVERS, mock_server, serve
from runtime.client_overhead.pool import fit_pool
from runtime.client_overhead.workloads import (
    CHARS_PER_TOKEN,
    MODEL,
    REPO_ROOT,
    messages,
    prompt_text,
)

DEFAULT_OUT = REPO_ROOT / "conf" / "orchestration" / "client_overhead.json"
KINDS = ("httpx", "openai", "langgraph_mapred", "langgraph_chain")
PACKAGES = ("httpx", "httpcore", "h11", "openai", "langchain-core", "langchain-openai",
            "langgraph", "langgraph-checkpoint", "pydantic", "pydantic-core", "orjson",
            "langsmith", "numpy")


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
    body = {"model": MODEL, "messages": messages(prompt_text(8000)), "max_tokens": 512}
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
    log("host probes")
    probes = {"start": calibrate()}
    log("  " + json.dumps(probes["start"]))
    log(f"sizes: {args.calls} calls per run, at most {args.limit} in flight")
    grid, grid_pool = await run_grid(base_url, args)
    size_fits = {k: fit_sizes([r for r in grid if r["kind"] == k]) for k in args.kinds}
    pool: list[dict[str, Any]] = []
    pool_fit: dict[str, float] | None = None
    if args.pool_sizes:
        log("httpcore pool pass")
        pool = await run_pool(base_url, args)
        pool_fit = fit_pool(pool)
    for kind, f in size_fits.items():
        f.update(grid_pool[kind])
        if pool_fit is not None:
            f["pool_model_ms"] = round(pool_model_ms(pool_fit, grid_pool[kind]), 4)
            f["a_ex_pool_ms"] = round(f["a_ms"] - f["pool_model_ms"], 4)
    bursts: list[dict[str, Any]] = []
    if args.bursts:
        log("bursts")
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
    log("host probes at the end: " + json.dumps(probes["end"]))
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
    ap.add_argument("--server", choices=SERVERS, default="uvicorn",
                    help="the mock server (uvicorn: the HTTP server vLLM's API server runs "
                         "on; asyncio: a bare loop, the one the 2026-11/12-06 numbers used)")
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
        serve(int(argv_[1]), *argv_[2:4])
        return 0
    args = parse_args(argv_)
    os.environ.setdefault("LANGSMITH_TRACING", "false")  # no tracing, as in HD's runs
    info = machine_info()
    started = datetime.datetime.now(datetime.UTC)
    t0 = time.perf_counter()
    with mock_server(server=args.server) as base_url:
        log(f"{args.server} mock server at {base_url}; client pid {os.getpid()}")
        measured = asyncio.run(run_benchmark(base_url, args))
    report = {
        "what": ("CPU time of the client process per LLM call for the baselines' Python "
                 "client stacks, against an instant mock OpenAI server in another process "
                 "(runtime/client_overhead/, docs/client_overhead.md). cpu = "
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
            "server": args.server, "grid_calls_per_run": args.calls, "grid_limit": args.limit,
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
    log("")
    log(render_table(report))
    atomic_write_text(args.out, json.dumps(report, indent=1) + "\n")  # a failed run: intact
    log(f"\nwrote {args.out} ({report['duration_s']} s)")
    return 0
