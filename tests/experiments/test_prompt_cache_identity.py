"""The prompt cache across runs (docs/reliability.md): a second run with the same output
identity hits and returns identical outputs; changing anything that decides an output
(backend, model name, model path, the weights in it, max_output_tokens) misses, so a run
never gets another engine's outputs; what does not decide outputs still hits."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from experiments.cli import run_task
from experiments.workflow_run import RunSettings, prompt_cache_namespace
from tests.experiments.test_experiments import config

BASE = ("backend=echo", "batch_size=2")


def _run(tmp: Path, store: Path, name: str, *overrides: str) -> tuple[dict, str]:
    """One debate run with the prompt-cache store `store`: (summary, outputs.jsonl)."""
    cfg = config("debate", *BASE, f"planner.prompt_cache_path={store}", *overrides)
    summary = run_task(cfg, tmp / name)
    return summary, (tmp / name / "outputs.jsonl").read_text()


def _model_dir(path: Path, weights: bytes = b"\0" * 64) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps({
        "num_attention_heads": 4, "hidden_size": 128, "num_hidden_layers": 2,
        "num_key_value_heads": 2, "max_position_embeddings": 4096}))
    (path / "model.safetensors").write_bytes(weights)
    return path


def _dimensions(tmp: Path) -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
    a, b = _model_dir(tmp / "model_a"), _model_dir(tmp / "model_b")
    return {
        "backend": (("backend=echo",), ("backend=sim",)),
        "model_name": (("model=qwen3-8b",), ("model=qwen3-14b",)),
        "model_path": ((f"model.path={a}",), (f"model.path={b}",)),
        "max_output_tokens": (("max_output_tokens=null",), ("max_output_tokens=8",)),
    }


@pytest.mark.parametrize("dimension", ["backend", "model_name", "model_path",
                                       "max_output_tokens"])
def test_changing_a_dimension_misses_and_repeating_hits(dimension: str, tmp_path: Path) -> None:
    before, after = _dimensions(tmp_path)[dimension]
    store = tmp_path / "store.json"
    cold, cold_out = _run(tmp_path, store, "cold", *before)
    assert cold["num_llm_calls"] > 0
    # an identical second run: every call is a hit, with identical outputs
    warm, warm_out = _run(tmp_path, store, "warm", *before)
    assert warm["num_llm_calls"] == 0 and warm_out == cold_out
    # the changed run misses everything: it makes the calls a run on an empty cache makes
    # and returns what that run returns
    other_cold, other_out = _run(tmp_path, tmp_path / "fresh.json", "fresh", *after)
    changed, changed_out = _run(tmp_path, store, "changed", *after)
    assert changed["num_llm_calls"] == other_cold["num_llm_calls"] == cold["num_llm_calls"]
    assert changed_out == other_out
    # and repeating the changed run hits in its turn
    again, again_out = _run(tmp_path, store, "again", *after)
    assert again["num_llm_calls"] == 0 and again_out == changed_out


def test_rewritten_weights_at_the_same_path_miss(tmp_path: Path) -> None:
    model = _model_dir(tmp_path / "model")
    store = tmp_path / "store.json"
    cold, out = _run(tmp_path, store, "cold", f"model.path={model}")
    warm, warm_out = _run(tmp_path, store, "warm", f"model.path={model}")
    assert warm["num_llm_calls"] == 0 and warm_out == out
    _model_dir(model, weights=b"\1" * 64)  # same size, new bytes (small: hashed by content)
    changed, _ = _run(tmp_path, store, "changed", f"model.path={model}")
    assert changed["num_llm_calls"] == cold["num_llm_calls"]


@pytest.mark.parametrize("override", ["batch_size=2", "num_workers=1", "system=helium_no_kv",
                                      "engine.max_num_seqs=8"])
def test_what_does_not_decide_outputs_still_hits(override: str, tmp_path: Path) -> None:
    store = tmp_path / "store.json"
    cold, out = _run(tmp_path, store, "cold")
    warm, warm_out = _run(tmp_path, store, "warm", override)
    assert cold["num_llm_calls"] > 0 and warm["num_llm_calls"] == 0 and warm_out == out


def test_the_reported_bug_echo_then_sim(tmp_path: Path) -> None:
    """The bug this guards: a sim run on an echo run's store made 0 calls."""
    store = tmp_path / "store.json"
    _run(tmp_path, store, "echo", "batch_size=4")
    sim, _ = _run(tmp_path, store, "sim", "batch_size=4", "backend=sim")
    assert sim["num_llm_calls"] == 24 and sim["plan"]["fetched_ops"] == 0


def _namespace(*overrides: str) -> str:
    cfg = config("debate", *BASE, *overrides)
    return prompt_cache_namespace(RunSettings.from_cfg(cfg), cfg)


def test_vllm_namespace_keys_path_weights_and_cap(tmp_path: Path) -> None:
    """backend=vllm (no engine started: the namespace reads only the model folder)."""
    model = _model_dir(tmp_path / "m")
    base = _namespace("backend=vllm", f"model.path={model}")
    assert base == _namespace("backend=vllm", f"model.path={model}", "batch_size=7",
                              "num_workers=1")
    assert base != _namespace("backend=vllm", f"model.path={model}", "max_output_tokens=8")
    assert (_namespace("backend=vllm", f"model.path={model}", "max_output_tokens=8")
            != _namespace("backend=vllm", f"model.path={model}", "max_output_tokens=16"))
    assert base != _namespace("backend=echo", f"model.path={model}")
    # a large weight file is fingerprinted by size and mtime, never read
    big = model / "model-00001-of-00001.safetensors"
    big.write_bytes(b"\0" * (2 << 20))
    with_big = _namespace("backend=vllm", f"model.path={model}")
    assert with_big != base
    st = big.stat()
    os.utime(big, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert _namespace("backend=vllm", f"model.path={model}") != with_big
    # a relative and an absolute spelling of the same folder are the same identity
    rel = os.path.relpath(model)
    assert _namespace("backend=vllm", f"model.path={rel}") == _namespace(
        "backend=vllm", f"model.path={model}")
