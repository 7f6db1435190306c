"""Cost model and KV sizing against the public numbers in PAPER.md §9."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sim.capacity import kv_capacity_tokens
from sim.config import EngineConfig
from sim.cost_model import BatchShape, ConstantCost, DecodeStep, FittedStepCost, RooflineCost
from sim.driver import simulate
from sim.errors import SimError
from sim.hardware import get_hardware
from sim.models import get_model
from tests.sim.fakes import BurstProcessor

QWEN8 = get_model("Qwen/Qwen3-8B")
SXM = get_hardware("h100-sxm")
NVL = get_hardware("H100 NVL")


def test_model_shapes() -> None:
    assert round(QWEN8.num_params / 1e9, 2) == 8.19
    assert round(get_model("qwen3-14b").num_params / 1e9, 2) == 14.77
    assert round(get_model("qwen3-32b").num_params / 1e9, 2) == 32.76
    assert round(get_model("llama-3.1-8b").num_params / 1e9, 2) == 8.03
    kib = {n: get_model(n).kv_bytes_per_token // 1024
           for n in ("qwen3-8b", "qwen3-14b", "qwen3-32b", "llama-3.1-8b")}
    assert kib == {"qwen3-8b": 144, "qwen3-14b": 160, "qwen3-32b": 256, "llama-3.1-8b": 128}
    with pytest.raises(SimError, match="unknown model 'gpt-5'"):
        get_model("gpt-5")
    with pytest.raises(SimError, match="unknown hardware 'a100'"):
        get_hardware("a100")


@pytest.mark.parametrize(("model", "vllm_tokens"), [
    ("llama-3.1-8b", 542_960), ("qwen3-8b", 478_560), ("qwen3-14b", 350_304),
    ("qwen3-32b", 81_648)])
def test_kv_capacity_matches_vllm_on_h100_nvl(model: str, vllm_tokens: int) -> None:
    tokens = kv_capacity_tokens(get_model(model), NVL)
    assert abs(tokens / vllm_tokens - 1) < 0.10
    assert tokens % 16 == 0


def test_h100_sxm_holds_fewer_kv_tokens() -> None:
    ratio = kv_capacity_tokens(QWEN8, SXM) / kv_capacity_tokens(QWEN8, NVL)
    assert 0.75 <= ratio <= 0.85  # PAPER.md §9: 20-25% fewer


def test_qwen3_32b_does_not_fit_at_low_utilization() -> None:
    with pytest.raises(SimError, match="qwen3-32b does not fit on h100-sxm"):
        kv_capacity_tokens(get_model("qwen3-32b"), SXM, gpu_memory_utilization=0.5)


def test_decode_latency_matches_public_measurements() -> None:
    cost = RooflineCost(QWEN8, SXM)
    assert cost.step_time(BatchShape(decodes=(512,))) == pytest.approx(7.3e-3, rel=0.2)
    assert cost.step_time(BatchShape(decodes=(512,) * 8)) == pytest.approx(7.7e-3, rel=0.2)


def test_large_batch_throughput_matches_public_measurement() -> None:
    llama = get_model("llama-3.1-8b")
    cfg = EngineConfig.of(kv_capacity_tokens(llama, SXM) // 16, max_num_seqs=256,
                       max_num_batched_tokens=8192)
    res = simulate(BurstProcessor(1000, 256, 256), [cfg], RooflineCost(llama, SXM))
    tokens_per_s = 1000 * (256 + 256) / res.makespan
    assert tokens_per_s == pytest.approx(12_500, rel=0.2)


def test_roofline_regimes() -> None:
    cost = RooflineCost(QWEN8, SXM)
    prefill = cost.step_time(BatchShape(prefills=((1000, 0),)))
    assert 0.015 < prefill < 0.059  # compute-bound, below the end-to-end TTFT of 59-75 ms
    # more context or more tokens never makes a step cheaper
    assert cost.step_time(BatchShape(decodes=(4096,))) > cost.step_time(BatchShape(decodes=(8,)))
    assert cost.step_time(BatchShape(prefills=((512, 4096),))) > prefill / 2
    assert BatchShape(prefills=((2, 3),), decodes=(5,)).attention_pairs == 2 * 4.5 + 6


@pytest.mark.parametrize("model", ["qwen3-8b", "qwen3-32b", "llama-3.1-8b"])
def test_roofline_decode_run_times_are_step_times_bit_for_bit(model: str) -> None:
    cost = RooflineCost(get_model(model), NVL)
    for n, ctx, steps in ((1, 0, 5), (3, 17, 40), (256, 1_234_567, 300), (1024, 9_000_000, 7)):
        generic = [cost.step_time(DecodeStep(n, ctx + s * n)) for s in range(steps)]
        assert cost.decode_run_times(n, ctx, steps) == generic  # == on floats: identical
        shape = BatchShape(decodes=(ctx // n,) * (n - 1) + (ctx - ctx // n * (n - 1),))
        assert cost.step_time(shape) == generic[0]


def test_constant_cost() -> None:
    assert ConstantCost(0.5, 0.25).step_time(BatchShape(prefills=((3, 0),), decodes=(1,))) == 1.5


def test_table_cost_loads_and_reports_bad_files(tmp_path: Path) -> None:
    coeffs = {"step_s": 1e-3, "per_token_s": 1e-5, "per_seq_s": 1e-4, "per_attn_pair_s": 1e-9,
              "per_kv_token_s": 1e-8}
    path = tmp_path / "costs.json"
    path.write_text(json.dumps({"entries": [
        {"model": "qwen3-8b", "hardware": "h100-sxm", "coeffs": coeffs, "source": "test"}]}))
    cost = FittedStepCost.load(path, "qwen3-8b", "h100-sxm")
    batch = BatchShape(prefills=((10, 0),), decodes=(100,))
    assert cost.step_time(batch) == pytest.approx(
        1e-3 + 11e-5 + 2e-4 + 1e-9 * (10 * 5.5 + 101) + 1e-8 * 100)
    with pytest.raises(SimError, match=r"no entry for model 'qwen3-14b' on 'h100-sxm'"):
        FittedStepCost.load(path, "qwen3-14b", "h100-sxm")
    path.write_text(json.dumps({"entries": [
        {"model": "m", "hardware": "h", "coeffs": {"step_s": 1, "bogus": 2}}]}))
    with pytest.raises(SimError, match="missing coefficients .*'per_token_s'.*unknown ones "
                                       r"\['bogus'\]"):
        FittedStepCost.load(path, "m", "h")
    path.write_text("not json")
    with pytest.raises(SimError, match="not a cost table"):
        FittedStepCost.load(path, "m", "h")


def test_shapes_and_datasheets_are_the_run_config() -> None:
    """The simulator reads the run's `model.shape` and `hardware:` blocks, so the command
    line can change them; bad blocks are named by key."""
    from experiments.compose import compose_once
    from experiments.workflow_run import RunSettings
    from sim.session import SimSettings, engine_config

    def capacity(*overrides: str) -> int:
        cfg = compose_once(["+experiment=debate", *overrides])
        run = RunSettings.from_cfg(cfg)
        sim = SimSettings.from_dict(cfg["sim"], cfg["hardware"])
        return engine_config(run.model, run.engine, sim.hardware).num_gpu_blocks

    base = capacity()
    assert base * 16 == kv_capacity_tokens(QWEN8, NVL)
    assert capacity("model.shape.num_layers=72") < base * 0.55  # twice the KV per token
    assert capacity("hardware=h100-sxm") * 16 == kv_capacity_tokens(QWEN8, SXM)
    assert capacity("hardware.memory_mib=81559") * 16 == kv_capacity_tokens(QWEN8, SXM)
    with pytest.raises(SimError, match=r"model.shape.num_layers must be a positive integer"):
        capacity("model.shape.num_layers=0")
    with pytest.raises(SimError, match=r"model.shape: unknown key\(s\) \['layers'\]"):
        capacity("+model.shape.layers=3")
    with pytest.raises(SimError, match=r"hardware.peak_flops must be a positive number"):
        capacity("hardware.peak_flops=-1")
