"""Check `sim.replay` against real vLLM: same token trace, same `num_cached_tokens`.

    python -m sim.validate_replay --vllm-python /tmp/vllmenv/bin/python --model DIR \\
        [--save tests/sim/data/vllm_trace_<scenario>.json]

Run with the project's Python. For each scenario it starts the given vLLM Python on this
file in `--collect` mode (which imports only vLLM and the standard library), where an
offline `LLM` with `num_gpu_blocks_override`, block size 32 and prefix caching runs the
scenario's prompts one at a time through `LLM.generate` (greedy, `ignore_eos`, pinned
`max_tokens`); prompts may extend earlier requests' actual outputs. The collected trace
(prompt ids, vLLM's output ids, observed `num_cached_tokens`) is then replayed through
the simulator and compared request by request. Exit status 0 iff everything matches.

`--model` is any small local model (e.g. a random-weight tiny Qwen3 saved with
`save_pretrained`; VLLM_CPU.md). Tests never import this module; they replay the saved
fixtures with `sim.replay` only.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
from typing import Any

BLOCK_SIZE = 32
# scenario -> engine: num_gpu_blocks, max_model_len and, for scenarios submitted all at
# once ("concurrent"), the batch limits and the scheduling policy
ENGINES: dict[str, dict[str, Any]] = {
    "sharing": {"num_gpu_blocks": 64, "max_model_len": 1024},
    "eviction": {"num_gpu_blocks": 12, "max_model_len": 320},
    "fuzz": {"num_gpu_blocks": 16, "max_model_len": 448},
    "concurrent": {"num_gpu_blocks": 14, "max_model_len": 384, "concurrent": True,
                   "max_num_seqs": 4, "max_num_batched_tokens": 128, "policy": "fcfs"},
    "concurrent_priority": {"num_gpu_blocks": 14, "max_model_len": 384, "concurrent": True,
                            "max_num_seqs": 4, "max_num_batched_tokens": 128,
                            "policy": "priority"},
    "concurrent_fuzz": {"num_gpu_blocks": 20, "max_model_len": 384, "concurrent": True,
                        "max_num_seqs": 6, "max_num_batched_tokens": 100, "policy": "fcfs",
                        "num_requests": 40},
}

Step = tuple[list[int], int]  # (prompt ids, max_tokens)


def _scenario(name: str, vocab: int, outputs: list[list[int]], prompts: list[list[int]],
              rng: random.Random) -> Step | None:
    """The next request of scenario `name` given earlier prompts/outputs, or None at the end."""
    def rand(n: int) -> list[int]:
        return [rng.randrange(10, vocab - 10) for _ in range(n)]

    i = len(prompts)
    if name == "sharing":
        base = random.Random(1).sample(range(10, vocab - 10), 300)
        script: list[Any] = [
            (base[:100], 20), (base[:100], 20), (base[:96], 8), (base[:200], 20),
            (base[:64] + rand(50), 10),
            "r0+out", (base[200:240], 60), "r6+out", "r7[:128]", (rand(90), 5),
        ]
        if i >= len(script):
            return None
        s = script[i]
        if s == "r0+out":
            return prompts[0] + outputs[0] + rand(40), 12
        if s == "r6+out":
            return prompts[6] + outputs[6] + rand(30), 16
        if s == "r7[:128]":
            return prompts[7][:128], 4
        return s
    if name == "eviction":
        seqs = random.Random(2)
        pool = [[seqs.randrange(10, vocab - 10) for _ in range(300)] for _ in range(4)]
        order = [(0, 150, 10), (1, 150, 10), (2, 150, 10), (0, 150, 10), (1, 150, 10),
                 (3, 300, 10), (0, 100, 5), (2, 64, 4), (1, 96, 30), (1, 200, 12),
                 (3, 300, 10), (3, 128, 1)]
        if i >= len(order):
            return None
        k, n, m = order[i]
        return pool[k][:n], m
    if name == "fuzz":
        if i >= 40:
            return None
        seqs = random.Random(3)
        pool = [[seqs.randrange(10, vocab - 10) for _ in range(400)] for _ in range(5)]
        if i >= 2 and rng.random() < 0.25:
            j = rng.randrange(i)
            cont = prompts[j] + outputs[j]
            cut = rng.randrange(1, len(cont) + 1)
            return (cont[:cut] + rand(rng.randrange(0, 40)))[:380], rng.randrange(1, 48)
        return pool[rng.randrange(5)][:rng.randrange(20, 380)], rng.randrange(1, 48)
    raise ValueError(f"unknown scenario {name!r}")


def _concurrent(vocab: int, rng: random.Random, n: int) -> list[tuple[list[int], int, int]]:
    """(prompt, max_tokens, priority) of `n` requests submitted together: shared prefixes
    of varied lengths, so same-step hits, chunked prefill and preemption all occur."""
    pool = [[rng.randrange(10, vocab - 10) for _ in range(300)] for _ in range(3)]
    out = []
    for _ in range(n):
        base = pool[rng.randrange(3)]
        n = rng.randrange(40, 260)
        prompt = base[:n] + [rng.randrange(10, vocab - 10) for _ in range(rng.randrange(0, 30))]
        out.append((prompt, rng.randrange(4, 60), rng.randrange(0, 3)))
    return out


def collect(model: str, scenario: str, out_path: str) -> None:
    """(vLLM side) Run `scenario` on real vLLM and write the observed trace to `out_path`."""
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt

    eng = ENGINES[scenario]
    kwargs: dict[str, Any] = {}
    if eng.get("concurrent"):
        kwargs = {"max_num_seqs": eng["max_num_seqs"], "scheduling_policy": eng["policy"],
                  "max_num_batched_tokens": eng["max_num_batched_tokens"]}
    llm = LLM(model=model, dtype="bfloat16", max_model_len=eng["max_model_len"],
              enable_prefix_caching=True, enforce_eager=True, seed=0, block_size=BLOCK_SIZE,
              kv_cache_memory_bytes=64 << 20, num_gpu_blocks_override=eng["num_gpu_blocks"],
              disable_log_stats=False, **kwargs)
    vocab = llm.llm_engine.model_config.get_vocab_size()
    rng = random.Random(0)
    prompts: list[list[int]] = []
    outputs: list[list[int]] = []
    cached: list[int] = []
    priorities: list[int] = []
    if eng.get("concurrent"):
        reqs = _concurrent(vocab, rng, eng.get("num_requests", 12))
        params = [SamplingParams(temperature=0, max_tokens=m, ignore_eos=True)
                  for _, m, _ in reqs]
        results = llm.generate([TokensPrompt(prompt_token_ids=p) for p, _, _ in reqs], params,
                               use_tqdm=False, priority=[pr for _, _, pr in reqs])
        for (p, _, pr), res in zip(reqs, results, strict=True):
            prompts.append(p)
            priorities.append(pr)
            outputs.append(list(res.outputs[0].token_ids))
            cached.append(int(res.num_cached_tokens or 0))
    while not eng.get("concurrent") and (
            step := _scenario(scenario, vocab, outputs, prompts, rng)) is not None:
        prompt, max_tokens = step
        params1 = SamplingParams(temperature=0, max_tokens=max_tokens, ignore_eos=True)
        res = llm.generate([TokensPrompt(prompt_token_ids=prompt)], params1, use_tqdm=False)[0]
        prompts.append(list(prompt))
        priorities.append(0)
        outputs.append(list(res.outputs[0].token_ids))
        cached.append(int(res.num_cached_tokens or 0))
    preemptions = sum(int(getattr(m, "value", 0)) for m in llm.get_metrics()
                      if m.name == "vllm:num_preemptions")
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump({"scenario": scenario, "vllm": _vllm_version(), "block_size": BLOCK_SIZE,
                   **eng, "num_preemptions": preemptions,
                   "requests": [{"prompt_token_ids": p, "output_token_ids": o,
                                 "priority": pr, "num_cached_tokens": c}
                                for p, o, pr, c in zip(prompts, outputs, priorities, cached,
                                                       strict=True)]},
                  f)


def _vllm_version() -> str:
    import vllm

    return str(vllm.__version__)


def compare(fixture: dict[str, Any]) -> tuple[list[tuple[int, int, int]], int]:
    """(index, vLLM, simulator) for every request where the simulator disagrees, and the
    simulator's preemption count (concurrent scenarios; 0 otherwise)."""
    from sim.replay import TraceRequest, replay, replay_concurrent

    reqs = fixture["requests"]
    trace = [TraceRequest(tuple(r["prompt_token_ids"]), tuple(r["output_token_ids"]),
                          r.get("priority", 0)) for r in reqs]
    preemptions = 0
    if fixture.get("concurrent"):
        done, preemptions = replay_concurrent(
            trace, fixture["num_gpu_blocks"], fixture["block_size"],
            max_num_seqs=fixture["max_num_seqs"],
            max_num_batched_tokens=fixture["max_num_batched_tokens"],
            queue_order=fixture["policy"])
    else:
        done = replay(trace, fixture["num_gpu_blocks"], fixture["block_size"])
    bad = [(i, r["num_cached_tokens"], d.cached_tokens or 0)
           for i, (r, d) in enumerate(zip(reqs, done, strict=True))
           if r["num_cached_tokens"] != d.cached_tokens]
    return bad, preemptions


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Validate sim.replay against real vLLM.")
    ap.add_argument("--model", required=True)
    ap.add_argument("--vllm-python", default=sys.executable)
    ap.add_argument("--scenario", action="append", choices=sorted(ENGINES))
    ap.add_argument("--save-dir", help="write each collected trace here as a test fixture")
    ap.add_argument("--collect", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.collect:
        collect(args.model, args.collect, args.out)
        return 0
    failures = 0
    for scenario in args.scenario or sorted(ENGINES):
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "trace.json")
            subprocess.run([args.vllm_python, os.path.abspath(__file__), "--model", args.model,
                            "--collect", scenario, "--out", out], check=True,
                           stdout=subprocess.DEVNULL)
            with open(out, encoding="utf-8") as f:
                fixture = json.load(f)
        bad, preemptions = compare(fixture)
        n = len(fixture["requests"])
        hits = sum(r["num_cached_tokens"] for r in fixture["requests"])
        print(f"{scenario}: {n - len(bad)}/{n} requests match "
              f"(vLLM {fixture['vllm']}, {fixture['num_gpu_blocks']} blocks, "
              f"{hits} cached tokens in total; preemptions vLLM "
              f"{fixture['num_preemptions']}, simulator {preemptions})")
        for i, real, simulated in bad:
            print(f"  request {i}: vLLM {real}, simulator {simulated}")
        failures += len(bad)
        if fixture.get("concurrent") and preemptions != fixture["num_preemptions"]:
            failures += 1
        if args.save_dir:
            path = os.path.join(args.save_dir, f"vllm_trace_{scenario}.json")
            with open(path, "w", encoding="utf-8") as f:
                json.dump(fixture, f, separators=(",", ":"))
                f.write("\n")
    return 1 if failures else 0


if __name__ == "__main__":
    _here = os.path.dirname(os.path.abspath(__file__))
    if "--collect" in sys.argv:  # keep sim/'s module names (config, models, ...) off the path
        sys.path = [p for p in sys.path if os.path.abspath(p or ".") != _here]
    else:
        sys.path.insert(0, os.path.dirname(_here))
    sys.exit(main())
