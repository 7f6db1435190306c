"""The vLLM backend's parts: tiny model and tokenizer, output cap, lspf prefix index,
calibration fit and cost table, and a quick real calibration."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import sim
from helium_lab.processor.calls import LLMCall
from helium_lab.processor.capping import CappedProcessor
from runtime.calibrate import COEFFS, calibrate, features, fit, update_table
from runtime.engine import StepShape
from runtime.prefix_index import PrefixIndex
from runtime.tiny_model import SPECIALS, tiny_model_dir
from runtime.tokenizer import HFTokenizer


def test_tiny_tokenizer_is_chatml_without_added_specials() -> None:
    tok = HFTokenizer.from_dir(tiny_model_dir())
    start, end = (tok.hf.convert_tokens_to_ids(s) for s in SPECIALS)
    ids = tok.encode("<|im_start|>user\nw123 s45<|im_end|>\n")
    assert ids[0] == start and end in ids and ids.count(start) == 1
    assert tok.encode("w123 s45") == tok.encode("w123 s45")
    assert tok.decode(ids) == "<|im_start|>user\nw123 s45<|im_end|>\n"
    assert len(tok.hf) <= 2048
    cfg = json.loads((tiny_model_dir() / "config.json").read_text())
    assert (cfg["hidden_size"], cfg["num_hidden_layers"], cfg["head_dim"]) == (128, 2, 32)
    assert cfg["tie_word_embeddings"] is False  # the construction reads other dims


def _call(n_out: int) -> LLMCall:
    from helium_lab.dsl.ops import SamplingParams

    return LLMCall(0, 0, "op", 0, (1, 2, 3), ((3, True),), n_out, SamplingParams())


class _Proc:
    done = True
    records = ()

    def start(self) -> list[LLMCall]:
        return [_call(5), _call(50)]

    def prewarm_prompts(self) -> dict[int, list[tuple[int, ...]]]:
        return {0: [(1, 2)]}

    def step_graph_updates(self) -> list[dict[str, int]]:
        return []


def test_cap_rewrites_only_long_calls() -> None:
    capped = CappedProcessor(_Proc(), 8)
    assert [c.output_tokens for c in capped.start()] == [5, 8]
    assert capped.prewarm_prompts() == {0: [(1, 2)]}


def test_prefix_index_counts_full_shared_blocks() -> None:
    idx = PrefixIndex(4)
    idx.add(tuple(range(10)))
    assert idx.longest(tuple(range(10))) == 8
    assert idx.longest((*range(6), 99, 99, 99)) == 4
    assert idx.longest((7, *range(9))) == 0


def test_fit_recovers_linear_costs_exactly(tmp_path: Path) -> None:
    true = dict(zip(COEFFS, (2e-3, 1e-5, 3e-5, 4e-9, 5e-8), strict=True))
    shapes = [((n, c),) for n in (32, 256, 1024) for c in (0, 512)]
    steps = []
    for k, (pre, dec) in enumerate([(p, ()) for p in shapes]
                                   + [((), tuple([ctx] * b)) for ctx in (64, 900)
                                      for b in (1, 7, 20)]):
        s0 = StepShape(float(k), 0.0, pre, dec, 1, 0, 0.0)
        t = sum(c * f for c, f in zip(true.values(), features(s0), strict=True))
        steps.append(StepShape(float(k), t, pre, dec, 1, 0, 0.0))
    got, r2 = fit(steps)
    assert r2 == pytest.approx(1.0)
    for name, value in true.items():
        assert got[name] == pytest.approx(value, rel=1e-6)
    table = tmp_path / "costs.json"
    table.write_text(json.dumps({"entries": [{"model": "m", "hardware": "h", "coeffs": got}]}))
    update_table(table, {"model": "tiny", "hardware": "cpu", "coeffs": got, "fit_r2": r2})
    update_table(table, {"model": "tiny", "hardware": "cpu", "coeffs": true, "fit_r2": 1.0})
    doc = json.loads(table.read_text())
    assert [(e["model"], e["hardware"]) for e in doc["entries"]] == [("m", "h"), ("tiny", "cpu")]
    assert sim.FittedStepCost.load(table, "tiny", "cpu") == sim.FittedStepCost(*true.values())


def test_quick_calibration_of_the_tiny_engine(tmp_path: Path) -> None:
    from helium_lab.config import ModelSettings

    out = tmp_path / "costs.json"
    entry = calibrate(ModelSettings("tiny"), out, "cpu", quick=True)
    assert entry["fit_r2"] > 0.5 and entry["num_steps"] > 50
    assert "vLLM 0.32.0" in entry["source"]
    cost = sim.FittedStepCost.load(out, "tiny", "cpu")
    one = cost.step_time(sim.BatchShape(prefills=((512, 0),)))
    assert 1e-4 < one < 1.0


class _CountingEngine:
    """Records what the calibration plan adds and when; every request is live until the
    next step, which finishes everything (a step's batch = the requests then live)."""

    def __init__(self) -> None:
        self.live: list[tuple[int, ...]] = []
        self.batches: list[list[tuple[int, ...]]] = []  # requests live at each step

    def add_raw(self, ids: tuple[int, ...], max_tokens: int) -> None:
        assert max_tokens >= 1
        self.live.append(ids)

    @property
    def has_work(self) -> bool:
        return bool(self.live)

    def step(self) -> None:
        self.batches.append(self.live)
        self.live = []


def test_calibration_plan_reaches_the_workflows_batches() -> None:
    """The full plan measures what the workflows run (batches of 35-185 requests in
    validation): up to 256 sequences at once and many prompts in one step; each wide batch
    fits half the KV, and its sequences share at most a short head."""
    from runtime.calibrate import KV_TOKENS, Profiler

    eng = _CountingEngine()
    Profiler(eng, 2048).plan(max_len=8192, kv_tokens=KV_TOKENS)  # type: ignore[arg-type]
    widths = [len(b) for b in eng.batches]
    assert max(widths) == 256 and sum(w >= 64 for w in widths) >= 8
    for batch in eng.batches:
        assert sum(len(ids) for ids in batch) <= KV_TOKENS // 2 + 64
        if len(batch) >= 64:  # a short shared head, then the sequence's own tokens
            common = len(batch[0])
            for ids in batch[1:]:
                common = next((i for i, (a, b) in enumerate(zip(batch[0], ids, strict=False))
                               if a != b), min(common, len(ids)))
            assert common <= 64 and min(len(ids) for ids in batch) - common >= 56
    quick = _CountingEngine()
    Profiler(quick, 2048).plan(max_len=8192, quick=True)  # type: ignore[arg-type]
    assert max(len(b) for b in quick.batches) <= 8  # the tests' quick plan stays small
