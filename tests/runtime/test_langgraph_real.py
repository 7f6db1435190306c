"""LangGraph itself against two real vLLM API servers (runtime/programs, issue 12 item 2):
`+experiment=debate backend=vllm model=tiny system=langgraph` writes the usual run folder
with real per-call times, vLLM's cached-token counts and the server that answered, and
its outputs equal Helium's on in-process engines."""

from __future__ import annotations

import json
from pathlib import Path

import psutil

from experiments.cli import run_task
from tests.experiments.test_experiments import config


def test_langgraph_program_runs_against_two_servers(tmp_path: Path) -> None:
    overrides = ("backend=vllm", "model=tiny", "batch_size=6")
    summary = run_task(config("debate", *overrides, "system=langgraph"), tmp_path / "lg")
    assert summary["num_llm_calls"] == 36 and summary["makespan_s"] > 0
    calls = [json.loads(x) for x in (tmp_path / "lg" / "calls.jsonl").read_text().splitlines()]
    assert len(calls) == 36
    assert {c["worker"] for c in calls} == {0, 1}  # the balancer used both servers
    assert all(0 <= c["submit_t"] < c["finish_t"] for c in calls)
    # round 2 repeats round 1's conversation: vLLM reports the shared prefix as cached
    assert sum(c["cached_tokens"] for c in calls) > 0
    engines = summary["engines"]
    assert sum(e["requests_served"] for e in engines.values()) == 36
    assert all(e["prompt_mismatches"] == 0 for e in engines.values())
    assert sum(e["prefix_cache_hits"] for e in engines.values()) == sum(
        c["cached_tokens"] for c in calls)
    logs = sorted((tmp_path / "lg" / "servers").glob("server_*/vllm_server.log"))
    assert len(logs) == 2
    left = [p for p in psutil.Process().children(recursive=True)
            if p.status() != psutil.STATUS_ZOMBIE]
    assert not left, left  # every server process tree is gone
    run_task(config("debate", *overrides, "system=helium"), tmp_path / "helium")
    assert ((tmp_path / "lg" / "outputs.jsonl").read_bytes()
            == (tmp_path / "helium" / "outputs.jsonl").read_bytes())
