"""Replay a token trace through one simulated engine, one request after another.

    python -m sim.replay TRACE.jsonl --num-gpu-blocks N --block-size B
    python -m sim.replay tests/sim/data/vllm_trace_concurrent.json

TRACE.jsonl holds one request per line: {"prompt_token_ids": [...], "output_token_ids":
[...]} (and optionally "priority"). Each request is admitted, prefilled, decoded to its
full output and freed before the next starts (like `LLM.generate` on one prompt at a
time; with `--concurrent`, all are submitted at once like one `LLM.generate` call on the
whole list, subject to `--max-num-seqs` and `--max-num-batched-tokens`); one JSON line is
printed per request: {"num_cached_tokens": n, "prompt_tokens": p, "output_tokens": o}.
`num_cached_tokens` is the prefix-cache hit when the request was first scheduled, the
number real vLLM reports as `RequestOutput.num_cached_tokens`. A malformed line is
reported with its line number (exit code 2) before anything runs.

A recorded trace (`runtime`'s recorder, `tests/sim/data/vllm_trace_*.json`) is one JSON
object with the engine's settings (`num_gpu_blocks`, `block_size`, `max_num_seqs`,
`max_num_batched_tokens`, `policy`, `concurrent`) and its `requests`; those settings are
used unless a flag overrides them.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from helium_lab.config import EngineSettings
from sim.errors import SimError
from sim.kv_cache import KVCacheManager
from sim.queue_policy import make_queue
from sim.request import SimRequest
from sim.scheduler import Scheduler


@dataclass(frozen=True)
class TraceRequest:
    prompt_token_ids: tuple[int, ...]
    output_token_ids: tuple[int, ...]
    priority: int = 0


def _ids(obj: dict[str, object], key: str, where: str) -> tuple[int, ...]:
    value = obj.get(key)
    if not isinstance(value, list) or not value:
        raise SimError(f"{where}: {key!r} must be a non-empty list of token ids")
    if not all(isinstance(t, int) and not isinstance(t, bool) and t >= 0 for t in value):
        raise SimError(f"{where}: {key!r} must hold non-negative integers only")
    return tuple(value)


def parse_trace(lines: Iterable[str], source: str = "trace") -> list[TraceRequest]:
    """Parse JSONL lines; blank lines are skipped, anything else malformed raises SimError."""
    out: list[TraceRequest] = []
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{source}:{lineno}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise SimError(f"{where}: not valid JSON ({e.msg})") from None
        out.append(_trace_request(obj, where))
    return out


def _trace_request(obj: object, where: str) -> TraceRequest:
    if not isinstance(obj, dict):
        raise SimError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    priority = obj.get("priority", 0)
    if not isinstance(priority, int) or isinstance(priority, bool):
        raise SimError(f"{where}: 'priority' must be an integer")
    return TraceRequest(_ids(obj, "prompt_token_ids", where),
                        _ids(obj, "output_token_ids", where), priority)


RECORDED_SETTINGS = {"num_gpu_blocks": "num_gpu_blocks", "block_size": "block_size",
                     "max_num_seqs": "max_num_seqs",
                     "max_num_batched_tokens": "max_num_batched_tokens",
                     "policy": "queue_order", "concurrent": "concurrent"}


def load_trace(text: str, source: str) -> tuple[list[TraceRequest], dict[str, object]]:
    """A JSONL trace (no settings) or a recorded trace object (its settings, keyed as the
    command-line options, see `RECORDED_SETTINGS`)."""
    try:
        whole = json.loads(text)
    except json.JSONDecodeError:
        whole = None
    if isinstance(whole, dict) and "requests" in whole:
        reqs = whole["requests"]
        if not isinstance(reqs, list):
            raise SimError(f"{source}: 'requests' must be a list")
        trace = [_trace_request(r, f"{source}: requests[{i}]") for i, r in enumerate(reqs)]
        settings = {opt: whole[key] for key, opt in RECORDED_SETTINGS.items() if key in whole}
        return trace, settings
    return parse_trace(text.splitlines(), source), {}


def _engine(num_gpu_blocks: int, block_size: int, enable_prefix_caching: bool,
            max_num_seqs: int, max_num_batched_tokens: int,
            queue_order: str) -> tuple[KVCacheManager, Scheduler]:
    settings = EngineSettings(block_size=block_size,
                              enable_prefix_caching=enable_prefix_caching,
                              max_num_seqs=max_num_seqs,
                              max_num_batched_tokens=max_num_batched_tokens,
                              queue_order=queue_order)
    kv = KVCacheManager(num_gpu_blocks, block_size, enable_prefix_caching)
    return kv, Scheduler(settings, kv, make_queue(queue_order))


def _request(kv: KVCacheManager, i: int, t: TraceRequest) -> SimRequest:
    kv_tokens = len(t.prompt_token_ids) + len(t.output_token_ids) - 1
    if kv.blocks_needed(kv_tokens) > kv.num_usable_blocks:
        raise SimError(f"request {i}: {kv_tokens} tokens of KV need "
                       f"{kv.blocks_needed(kv_tokens)} blocks of {kv.block_size}, but only "
                       f"{kv.num_usable_blocks} are usable")
    return SimRequest(i, t.prompt_token_ids, t.output_token_ids, t.priority)


def _drain(sched: Scheduler) -> None:
    while sched.has_work():
        out = sched.schedule(0.0)
        if not out.requests and not out.preempted:
            raise SimError("engine stalled with nothing schedulable")
        sched.update(out, 0.0)


def replay(trace: Sequence[TraceRequest], num_gpu_blocks: int, block_size: int,
           enable_prefix_caching: bool = True) -> list[SimRequest]:
    """Run `trace` one request at a time through one engine; return finished requests."""
    kv, sched = _engine(num_gpu_blocks, block_size, enable_prefix_caching, 1024, 8192, "fcfs")
    done: list[SimRequest] = []
    for i, t in enumerate(trace):
        req = _request(kv, i, t)
        sched.add(req)
        _drain(sched)
        done.append(req)
    return done


def replay_concurrent(trace: Sequence[TraceRequest], num_gpu_blocks: int, block_size: int,
                      *, max_num_seqs: int, max_num_batched_tokens: int,
                      queue_order: str = "fcfs", enable_prefix_caching: bool = True,
                      ) -> tuple[list[SimRequest], int]:
    """Submit all of `trace` at once (like one `LLM.generate` call on a list) and run it
    to completion; return the requests in trace order and the number of preemptions."""
    kv, sched = _engine(num_gpu_blocks, block_size, enable_prefix_caching, max_num_seqs,
                        max_num_batched_tokens, queue_order)
    reqs = [_request(kv, i, t) for i, t in enumerate(trace)]
    for req in reqs:
        sched.add(req)
    _drain(sched)
    return reqs, sched.num_preemptions


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sim.replay", description=__doc__.split("\n")[0])
    ap.add_argument("trace", help="JSONL trace ('-' for stdin)")
    ap.add_argument("--num-gpu-blocks", type=int,
                    help="vLLM's num_gpu_blocks (includes the null block); required for JSONL")
    ap.add_argument("--block-size", type=int, help="required for JSONL")
    ap.add_argument("--no-prefix-caching", action="store_true")
    ap.add_argument("--concurrent", action="store_true", default=None,
                    help="submit all requests at once instead of one after another")
    ap.add_argument("--max-num-seqs", type=int)
    ap.add_argument("--max-num-batched-tokens", type=int)
    ap.add_argument("--queue-order", choices=("fcfs", "priority", "lspf"))
    args = ap.parse_args(argv)
    try:
        if args.trace == "-":
            trace, recorded = load_trace(sys.stdin.read(), "<stdin>")
        else:
            with open(args.trace, encoding="utf-8") as f:
                trace, recorded = load_trace(f.read(), args.trace)
        opts = {**{"max_num_seqs": 256, "max_num_batched_tokens": 8192,
                   "queue_order": "fcfs", "concurrent": False},
                **recorded, **{k: v for k, v in vars(args).items() if v is not None}}
        for key in ("num_gpu_blocks", "block_size"):
            if opts.get(key) is None:
                raise SimError(f"--{key.replace('_', '-')} is required (a JSONL trace does "
                               "not record it)")
        if opts["concurrent"]:
            done, _ = replay_concurrent(
                trace, int(opts["num_gpu_blocks"]), int(opts["block_size"]),
                max_num_seqs=int(opts["max_num_seqs"]),
                max_num_batched_tokens=int(opts["max_num_batched_tokens"]),
                queue_order=str(opts["queue_order"]),
                enable_prefix_caching=not args.no_prefix_caching)
        else:
            done = replay(trace, int(opts["num_gpu_blocks"]), int(opts["block_size"]),
                          enable_prefix_caching=not args.no_prefix_caching)
    except (OSError, SimError, UnicodeDecodeError) as e:
        print(f"sim.replay: error: {e}", file=sys.stderr)
        return 2
    for req in done:
        print(json.dumps({"num_cached_tokens": req.cached_tokens,
                          "prompt_tokens": req.num_prompt_tokens,
                          "output_tokens": req.max_tokens}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
