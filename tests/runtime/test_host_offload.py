"""The simulated host KV tier (sim/host_tier.py) against vLLM's own (`OffloadingConnector`
with runtime/host_offload.py's copy worker on the CPU build): one trace, replayed request
by request through both, gives the same engine-tier hits and host-tier hits per request.

The trace: a shared 4-block prefix S, prompts on it and unrelated fillers, 300 tokens
each (9 full blocks of 32, 10 blocks with the output), on 32 engine blocks. Fillers push
S and its prompts off the engine; both tiers keep everything they stored (512 host
chunks, fewer blocks than that in the trace), so what comes back comes from the host.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor

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
    """vLLM's side, in a spawned process (an in-process engine with its own settings):
    32 blocks of 32 tokens, a host tier of 8 MiB (512 of the tiny model's blocks)."""
    from helium_lab.config import EngineSettings, ModelSettings
    from runtime.host_offload import replay

    engine = EngineSettings(block_size=BS, kv_capacity_tokens=32 * BS, max_model_len=512,
                            max_num_seqs=4)
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(replay, ModelSettings("tiny"), prompts, engine, output_tokens=OUT,
                           host_bytes=8 << 20).result(timeout=600)


def replay_sim(prompts: list[list[int]], num_gpu_blocks: int) -> list[tuple[int, int]]:
    from sim.host_tier import HostTier, HostTierConfig
    from sim.kv_cache import KVCacheManager
    from sim.request import SimRequest
    from tests.sim.fakes import serve_alone

    kv = KVCacheManager(num_gpu_blocks, BS)
    host = HostTier(HostTierConfig(num_blocks=512, link_bytes_per_s=1e9), BS)
    kv.attach_host(host)
    hits = []
    for i, p in enumerate(prompts):
        hit = serve_alone(kv, SimRequest(i, tuple(p), tuple(range(7, 7 + OUT))),
                          on_admit=lambda: host.step_time(0.0))
        hits.append((len(hit.blocks) * BS, len(hit.host_hashes) * BS))
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
