"""The simulated host KV tier (sim/host_tier.py) against vLLM's own (`OffloadingConnector`
with runtime/host_offload.py's copy worker on the CPU build): one trace, replayed request
by request through both, gives the same engine-tier hits and host-tier hits per request.

The trace: a shared 4-block prefix S, prompts on it and unrelated fillers, 300 tokens
each (9 full blocks of 32, 10 blocks with the output), on 32 engine blocks. Fillers push
S and its prompts off the engine; both tiers keep everything they stored (512 host
chunks, fewer blocks than that in the trace), so what comes back comes from the host.
"""

from __future__ import annotations

import os
import pytest

BS = 32
PROMPT = 300
OUT = 4


def _tokens(seed: int, n: int, base: int = 10) -> list[int]:
    return [(seed * 97 + i * 13) % 1500 + base for i in range(n)]


def trace() -> list[tuple[str, list[int]]]:
    shared = _tokens(1, 4 * BS)
    on_s = {name: shared + _tokens(seed, PROMPT - len(shared))
            for name, seed in (("A", 11), ("B", 12), ("C", 13))}
    fillers = [(f"F{i}", _tokens(100 + i, PROMPT)) for i in range(6)]
    return [("A", on_s["A"]), ("A", on_s["A"]), ("B", on_s["B"]), *fillers,
            ("A", on_s["A"]), ("C", on_s["C"]), ("B", on_s["B"])]


def replay_vllm(prompts: list[list[int]]) -> tuple[list[tuple[int, int]], int]:
    """(engine-tier hit tokens, host-tier hit tokens) per prompt, and the engine's KV
    blocks."""
    os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt

    from runtime.host_offload import offload_transfer_config
    from runtime.tiny_model import tiny_model_dir

    llm = LLM(model=str(tiny_model_dir()), dtype="bfloat16", max_model_len=512,
              enable_prefix_caching=True, enforce_eager=True, seed=0, block_size=BS,
              kv_cache_memory_bytes=512 * 1024, disable_log_stats=False, max_num_seqs=4,
              kv_transfer_config=offload_transfer_config(8 << 20))
    core = llm.llm_engine.engine_core.engine_core
    blocks = core.vllm_config.cache_config.num_gpu_blocks

    def counters() -> tuple[int, int]:
        got = {m.name: getattr(m, "value", 0) for m in llm.get_metrics()}
        return (int(got.get("vllm:prefix_cache_hits", 0)),
                int(got.get("vllm:external_prefix_cache_hits", 0)))

    sp = SamplingParams(temperature=0, max_tokens=OUT, ignore_eos=True)
    hits = []
    try:
        before = counters()
        for p in prompts:
            llm.generate([TokensPrompt(prompt_token_ids=p)], sp, use_tqdm=False)
            now = counters()
            hits.append((now[0] - before[0], now[1] - before[1]))
            before = now
        return hits, blocks
    finally:
        del llm


def replay_sim(prompts: list[list[int]], num_gpu_blocks: int) -> list[tuple[int, int]]:
    from sim.host_tier import HostTier, HostTierConfig
    from sim.kv_cache import KVCacheManager
    from sim.request import SimRequest

    kv = KVCacheManager(num_gpu_blocks, BS)
    host = HostTier(HostTierConfig(num_blocks=512, link_bytes_per_s=1e9), BS)
    kv.attach_host(host)
    hits = []
    for i, p in enumerate(prompts):
        req = SimRequest(i, tuple(p), tuple(range(7, 7 + OUT)))
        hit = kv.find_cached_prefix(req)
        hits.append((len(hit.blocks) * BS, len(hit.host_hashes) * BS))
        assert kv.allocate_slots(req, req.num_tokens - hit.num_tokens, hit)
        host.step_time(0.0)
        req.num_computed_tokens = req.num_tokens
        while True:
            req.sample()
            if req.finished:
                break
            assert kv.allocate_slots(req, 1)
            req.num_computed_tokens += 1
        kv.free(req)
        kv.check_integrity()
    return hits


def test_hits_per_tier_match_vllms_offloading_connector() -> None:
    names, prompts = zip(*trace(), strict=True)
    real, blocks = replay_vllm(list(prompts))
    simulated = replay_sim(list(prompts), blocks)
    assert blocks == 32
    # hand-worked: A twice (the second hits its 9 full blocks but the last token's: 288),
    # B on S (128), the fillers nothing; then A from the host, C on S (loaded back with A),
    # B: S on the engine, the rest of its blocks from the host
    expected = [(0, 0), (288, 0), (128, 0), *[(0, 0)] * 6, (0, 288), (128, 0), (128, 160)]
    assert simulated == expected, list(zip(names, simulated, strict=True))
    assert real == simulated, list(zip(names, real, simulated, strict=True))
