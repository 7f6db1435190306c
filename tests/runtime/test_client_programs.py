"""The baselines' client programs against two real vLLM API servers (runtime/programs):
LangGraph itself, QueryWise's and OpWise's AsyncOpenAI programs. `+experiment=debate
backend=vllm model=tiny system=langgraph` writes the usual run folder with real per-call
times, vLLM's cached-token counts and the server that answered, and its outputs equal
Helium's on in-process engines."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from experiments.cli import run_task
from tests.experiments.test_experiments import config

from .conftest import live_children


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
    # vLLM's tokens-per-step histogram counts every engine step: every prompt token not
    # cached and every output token is stepped (the first output token comes with the
    # prefill, hence the slack of one per call)
    steps = sum(e["num_steps"] for e in engines.values())
    stepped = sum(e["step_tokens"] for e in engines.values())
    assert summary["num_steps"] == steps >= 36 / 2
    computed = sum(c["prompt_tokens"] - c["cached_tokens"] + c["output_tokens"] for c in calls)
    assert computed - len(calls) <= stepped <= computed
    # /metrics glimpses (possibly none on a loaded CPU) are kept only while a server is busy
    rows = [x.split(",") for x in (tmp_path / "lg" / "timeseries.csv").read_text().split()]
    assert rows[0][4:6] == ["running", "waiting"]
    assert all(int(r[4]) + int(r[5]) > 0 for r in rows[1:])
    assert all(e["prompt_mismatches"] == 0 for e in engines.values())
    # each server's engine processes found by their titles: its engine core and its worker
    # both worked, and neither more than the engine processes together
    for e in engines.values():
        assert e["engine_core_cpu_s"] > 0 and e["worker_cpu_s"] > 0
        assert e["engine_core_cpu_s"] + e["worker_cpu_s"] <= e["engine_cpu_s"] + 1e-6
    assert sum(e["prefix_cache_hits"] for e in engines.values()) == sum(
        c["cached_tokens"] for c in calls)
    logs = sorted((tmp_path / "lg" / "servers").glob("server_*/vllm_server.log"))
    assert len(logs) == 2
    left = live_children()
    assert not left, left  # every server process tree is gone
    run_task(config("debate", *overrides, "system=helium"), tmp_path / "helium")
    assert ((tmp_path / "lg" / "outputs.jsonl").read_bytes()
            == (tmp_path / "helium" / "outputs.jsonl").read_bytes())


@pytest.mark.parametrize("system", ["vllm", "opwise"])
def test_openai_programs_run_against_two_servers(tmp_path: Path, system: str) -> None:
    """QueryWise's and OpWise's AsyncOpenAI programs: every call through the balancer,
    QueryWise never more than one request in flight (so both servers are only used when
    a tie sends it to server 0: it is always server 0), outputs equal Helium's."""
    overrides = ("backend=vllm", "model=tiny", "batch_size=3")
    summary = run_task(config("reflect", *overrides, f"system={system}"), tmp_path / system)
    calls = [json.loads(x) for x in (tmp_path / system / "calls.jsonl").read_text().splitlines()]
    assert len(calls) == summary["num_llm_calls"] > 0
    if system == "vllm":
        assert {c["worker"] for c in calls} == {0}
        spans = sorted((c["submit_t"], c["finish_t"]) for c in calls)
        assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))  # one at a time
    else:
        assert {c["worker"] for c in calls} == {0, 1}
    run_task(config("reflect", *overrides, "system=helium"), tmp_path / "helium")
    assert ((tmp_path / system / "outputs.jsonl").read_bytes()
            == (tmp_path / "helium" / "outputs.jsonl").read_bytes())


def test_timeouts_and_a_dead_server_fail_the_run_and_leave_no_process(tmp_path: Path) -> None:
    """A request past the client's timeout, then a server killed mid-run: each run fails
    with `RuntimeBackendError` naming the cause (the dead server's log tail included), and
    closing the session leaves no server process."""
    import os
    import signal
    import threading
    import time

    import pytest

    from helium_lab.config import EngineSettings, ModelSettings
    from runtime.errors import RuntimeBackendError
    from runtime.server_session import ServerSession
    from tests.runtime.conftest import processor

    engine = EngineSettings(block_size=32, kv_capacity_tokens=65_536, max_model_len=8192)
    with ServerSession(ModelSettings("tiny"), engine, 2, program="langgraph",
                       log_dir=tmp_path, max_output_tokens=32,
                       request_timeout_s=0.001) as session:
        tok = session.tokenizer
        with pytest.raises(RuntimeBackendError, match="Timeout"):
            session.run(processor("debate", "langgraph", tok, batch_size=4, num_workers=2))
        session.request_timeout_s = None
        proc = processor("debate", "langgraph", tok, batch_size=40, num_workers=2)
        victim = session.servers[1]

        def kill_when_running() -> None:
            deadline = time.monotonic() + 300
            while not proc.records and time.monotonic() < deadline:
                time.sleep(0.05)
            os.killpg(victim.pid, signal.SIGKILL)

        killer = threading.Thread(target=kill_when_running, daemon=True)
        killer.start()
        with pytest.raises(RuntimeBackendError, match="server 1 exited"):
            session.run(proc)
        killer.join()
        assert 0 < len(proc.records) < 240  # the run stopped part way
    left = live_children()
    assert not left, left
