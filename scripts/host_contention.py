"""How much of a core a CPU-bound process gets beside a stepping vLLM API server on this
host: the client program's share while the engine works (docs/client_overhead.md,
"the host's scheduler").

    .venv/bin/python scripts/host_contention.py [--in-flight 1 16 64 256] [--seconds 8]
        [--out FILE.json]

Starts one vLLM API server (CPU build, the tiny model, `+experiment=validate_sim_systems`'s
engine settings, as the validation's real runs get them), warms it up, then for each
`--in-flight` k runs three phases of `--seconds`: k requests kept in flight (32 output
tokens each, prompts of ~100 tokens that share no cached block) from this process's
asyncio loop, first alone, then beside a "busy" subprocess spinning pure Python for the
whole phase (a client program whose event loop is busy), then beside a "waker" that
sleeps 4 ms and computes 1 ms of CPU over and over (a thread woken by each request, as
the API server is). Prints per phase: the subprocess's CPU over its wall time, the
waker's median wall time per 1-ms burst, the load generator's CPU share, the API
server's, the engine core's and the worker's (psutil, per process), and the engine steps
and requests finished per second (vLLM's `/metrics`). Processor sharing would give a busy
thread min(1, cores / runnable threads) of a core; see the docs for what this machine
gave.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from experiments.compose import compose_once
from helium_lab.config import EngineSettings
from runtime.serve import VllmServer
from runtime.server_session import SERVER_FLAGS, cpu_seconds, parse_metrics
from runtime.tiny_model import tiny_model_dir

# a thread that sleeps 4 ms, then computes for 1 ms of CPU, over and over (the API
# server's kind: woken by each request); prints its CPU share and its bursts' median wall
WAKER = ("import statistics, sys, time\n"
         "t0, c0, walls = time.monotonic(), time.process_time(), []\n"
         "while time.monotonic() - t0 < float(sys.argv[1]):\n"
         "    time.sleep(0.004)\n"
         "    w, c = time.monotonic(), time.thread_time()\n"
         "    while time.thread_time() - c < 0.001:\n"
         "        pass\n"
         "    walls.append(time.monotonic() - w)\n"
         "print(time.process_time() - c0, time.monotonic() - t0, statistics.median(walls))\n")
HOG = ("import sys, time\n"
       "t0, c0 = time.monotonic(), time.process_time()\n"
       "while time.monotonic() - t0 < float(sys.argv[1]):\n"
       "    sum(range(2000))\n"
       "print(time.process_time() - c0, time.monotonic() - t0)\n")
OUTPUT_TOKENS = 32


async def keep_in_flight(server: VllmServer, k: int, seconds: float, first: int) -> int:
    """Keep `k` completions in flight for `seconds`; returns how many were sent."""
    stop = time.monotonic() + seconds
    sent = 0
    async with httpx.AsyncClient(timeout=600) as client:
        async def lane() -> None:
            nonlocal sent
            while time.monotonic() < stop:
                n = first + sent
                sent += 1
                await client.post(f"{server.base_url}/completions", json={
                    "model": server.model_name, "prompt": f"{n} " + "word " * 100,
                    "max_tokens": OUTPUT_TOKENS, "temperature": 0, "ignore_eos": True})

        await asyncio.gather(*(lane() for _ in range(k)))
    return sent


def phase(server: VllmServer, k: int, seconds: float, hog: str | None, first: int
          ) -> dict[str, Any]:
    metrics_url = server.base_url.removesuffix("/v1") + "/metrics"
    m0, cpu0 = parse_metrics(httpx.get(metrics_url).text), cpu_seconds(server)
    own0, t0 = time.process_time(), time.monotonic()
    proc = (subprocess.Popen([sys.executable, "-c", HOG if hog == "busy" else WAKER,
                              str(seconds)], stdout=subprocess.PIPE, text=True)
            if hog else None)
    sent = asyncio.run(keep_in_flight(server, k, seconds, first))
    hog_share = burst_ms = None
    if proc is not None:
        cpu, wall, *burst = (float(x) for x in proc.communicate()[0].split())
        hog_share = cpu / wall
        burst_ms = 1e3 * burst[0] if burst else None
    wall = time.monotonic() - t0
    m1, cpu1 = parse_metrics(httpx.get(metrics_url).text), cpu_seconds(server)
    share = {role: (cpu1[role] - cpu0[role]) / wall for role in cpu1}
    return {"in_flight": k, "beside": hog, "sent": sent, "wall_s": round(wall, 3),
            "hog_share": None if hog_share is None else round(hog_share, 3),
            "waker_burst_ms": None if burst_ms is None else round(burst_ms, 3),
            "load_generator_share": round((time.process_time() - own0) / wall, 3),
            "api_server_share": round(share["api_server_cpu_s"], 3),
            "engine_core_share": round(share["engine_core_cpu_s"], 3),
            "worker_share": round(share["worker_cpu_s"], 3),
            "steps_per_s": round((m1.get("steps", 0) - m0.get("steps", 0)) / wall, 1),
            "requests_per_s": round(sent / wall, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--in-flight", type=int, nargs="+", default=[1, 16, 64, 256])
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    cfg = compose_once(["+experiment=validate_sim_systems"])
    engine = EngineSettings.from_dict(cfg["engine"])
    rows = []
    with tempfile.TemporaryDirectory() as logs, \
            VllmServer(tiny_model_dir(), Path(logs), engine=engine, seed=0,
                       extra_args=SERVER_FLAGS, log_stats=True) as server:
        asyncio.run(keep_in_flight(server, 4, 3.0, 10**6))  # warm-up
        print(f"{'k':>4} {'beside':>6} {'its core':>8} {'burst ms':>8} {'loadgen':>7} "
              f"{'api':>5} {'eng.core':>8} {'worker':>6} {'steps/s':>7} {'req/s':>6}")
        first = 0
        for k in args.in_flight:
            for hog in (None, "busy", "waker"):
                time.sleep(2.0)  # the engine's pollers back to sleep
                row = phase(server, k, args.seconds, hog, first)
                first += row["sent"]
                rows.append(row)
                hog_s = "-" if row["hog_share"] is None else f"{row['hog_share']:.2f}"
                burst = row["waker_burst_ms"]
                burst_s = "-" if burst is None else f"{burst:.2f}"
                print(f"{k:4d} {hog or '-':>6} {hog_s:>8} {burst_s:>8} "
                      f"{row['load_generator_share']:7.2f} {row['api_server_share']:5.2f} "
                      f"{row['engine_core_share']:8.2f} {row['worker_share']:6.2f} "
                      f"{row['steps_per_s']:7.1f} {row['requests_per_s']:6.2f}", flush=True)
    if args.out is not None:
        args.out.write_text(json.dumps({"engine": vars(engine), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
