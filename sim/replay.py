"""Replay a token trace through one simulated engine, one request after another.

    python -m sim.replay TRACE.jsonl --num-gpu-blocks N --block-size B

TRACE.jsonl holds one request per line: {"prompt_token_ids": [...], "output_token_ids":
[...]} (and optionally "priority"). Each request is admitted, prefilled, decoded to its
full output and freed before the next starts (like `LLM.generate` on one prompt at a
time; with `--concurrent`, all are submitted at once like one `LLM.generate` call on the
whole list, subject to `--max-num-seqs` and `--max-num-batched-tokens`); one JSON line is
printed per request: {"num_cached_tokens": n, "prompt_tokens": p, "output_tokens": o}.
`num_cached_tokens` is the prefix-cache hit when the request was first scheduled, the
number real vLLM reports as `RequestOutput.num_cached_tokens`. A malformed line is
reported with its line number (exit code 2) before anything runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sim.config import EngineConfig
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
        if not isinstance(obj, dict):
            raise SimError(f"{where}: expected a JSON object, got {type(obj).__name__}")
        priority = obj.get("priority", 0)
        if not isinstance(priority, int) or isinstance(priority, bool):
            raise SimError(f"{where}: 'priority' must be an integer")
        out.append(TraceRequest(_ids(obj, "prompt_token_ids", where),
                                _ids(obj, "output_token_ids", where), priority))
    return out


def _engine(num_gpu_blocks: int, block_size: int, enable_prefix_caching: bool,
            max_num_seqs: int, max_num_batched_tokens: int,
            queue_order: str) -> tuple[KVCacheManager, Scheduler]:
    config = EngineConfig(num_gpu_blocks=num_gpu_blocks, block_size=block_size,
                          enable_prefix_caching=enable_prefix_caching,
                          max_num_seqs=max_num_seqs,
                          max_num_batched_tokens=max_num_batched_tokens,
                          queue_order=queue_order)
    kv = KVCacheManager(num_gpu_blocks, block_size, enable_prefix_caching)
    return kv, Scheduler(config, kv, make_queue(queue_order))


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
    ap.add_argument("--num-gpu-blocks", type=int, required=True,
                    help="vLLM's num_gpu_blocks (includes the null block)")
    ap.add_argument("--block-size", type=int, required=True)
    ap.add_argument("--no-prefix-caching", action="store_true")
    ap.add_argument("--concurrent", action="store_true",
                    help="submit all requests at once instead of one after another")
    ap.add_argument("--max-num-seqs", type=int, default=256)
    ap.add_argument("--max-num-batched-tokens", type=int, default=8192)
    ap.add_argument("--queue-order", default="fcfs", choices=("fcfs", "priority", "lspf"))
    args = ap.parse_args(argv)
    try:
        if args.trace == "-":
            trace = parse_trace(sys.stdin, "<stdin>")
        else:
            with open(args.trace, encoding="utf-8") as f:
                trace = parse_trace(f, args.trace)
        if args.concurrent:
            done, _ = replay_concurrent(
                trace, args.num_gpu_blocks, args.block_size,
                max_num_seqs=args.max_num_seqs,
                max_num_batched_tokens=args.max_num_batched_tokens,
                queue_order=args.queue_order,
                enable_prefix_caching=not args.no_prefix_caching)
        else:
            done = replay(trace, args.num_gpu_blocks, args.block_size,
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
