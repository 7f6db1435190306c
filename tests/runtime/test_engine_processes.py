"""Engines in child processes (`engine.engine_processes`, runtime/engine_process.py): the
same outputs and records as in-process engines, steps that overlap in time, failures that
name the worker, and no process left behind."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import pytest

from helium_lab.config import EngineSettings, ModelSettings, Orchestration
from helium_lab.errors import ConfigError
from runtime import EngineDiedError, engine_process, open_session
from runtime.engine_process import RemoteEngine
from runtime.session import VllmSession, overlap_possible

from .conftest import processor, run_interrupted_then_again

TINY = ModelSettings("tiny")
CAP = 16
DEBATE = {"agents": 2, "rounds": 2}
MAPRED = {"experts": 3, "roles": 3}


def _settings(processes: bool) -> EngineSettings:
    return EngineSettings(block_size=32, kv_capacity_tokens=16_384, max_model_len=4096,
                          engine_processes=processes)


@pytest.fixture(scope="module")
def remote() -> Iterator[VllmSession]:
    with open_session(TINY, _settings(True), 2, orchestration=Orchestration(), seed=0,
                      max_output_tokens=CAP) as s:
        yield s


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped) counts as gone
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def test_outputs_and_records_match_in_process_engines(remote: VllmSession) -> None:
    assert remote.engine_processes and all(isinstance(e, RemoteEngine) for e in remote.engines)
    got, want = {}, {}
    with open_session(TINY, _settings(False), 2, seed=0, max_output_tokens=CAP) as local:
        assert not local.engine_processes
        for name, session in (("remote", remote), ("local", local)):
            out = got if name == "remote" else want
            for system in ("helium", "langgraph"):
                for wf, params in (("debate", DEBATE), ("mapred_mmlu", MAPRED)):
                    proc = processor(wf, system, session.tokenizer, num_workers=2, **params)
                    res = session.run(proc)
                    assert proc.done
                    out[system, wf] = (proc.outputs(),
                                       sorted((r.call_id, r.prompt_tokens, r.output_tokens)
                                              for r in res.records))
    assert got == want
    assert got["helium", "debate"][0] == got["langgraph", "debate"][0]


def test_timeseries_stats_and_overlapping_steps(remote: VllmSession) -> None:
    proc = processor("mapred_mmlu", "helium", remote.tokenizer, batch_size=4, num_workers=2,
                     **MAPRED)
    res = remote.run(proc)
    assert set(res.timeseries) == {0, 1} and all(res.timeseries.values())
    for w, st in res.stats.items():
        assert st["num_steps"] >= len(res.timeseries[w]) > 0
        assert st["num_finished"] > 0 and st["kv_capacity_tokens"] == 16_384
        assert 0 <= st["prefix_cache_hit_rate"] <= 1
    for r in res.records:
        assert res.start_t <= r.submit_t <= r.start_t <= r.first_token_t <= r.finish_t
    # both workers' steps are started before either is collected: with a core each, some
    # step of worker 0 runs while one of worker 1 does (in process, none ever can)
    spans = {w: [(s.t, s.t + s.dt) for s in ts] for w, ts in res.timeseries.items()}
    overlaps = sum(1 for a0, a1 in spans[0] for b0, b1 in spans[1] if a0 < b1 and b0 < a1)
    if overlap_possible(2):
        assert overlaps > 0


def test_interrupt_aborts_and_the_session_stays_usable(remote: VllmSession) -> None:
    """Ctrl-C while worker 1's step is in flight: its reply is read and dropped, so the
    next run's replies are its own."""
    assert len(run_interrupted_then_again(remote, 2, **DEBATE).records) == 8


def test_bad_settings_fail_before_any_process() -> None:
    with pytest.raises(ConfigError, match="multiple of 32"):
        open_session(TINY, EngineSettings(block_size=16, engine_processes=True), 2)


def test_a_dead_engine_process_is_reported_and_nothing_is_left() -> None:
    s = open_session(TINY, _settings(True), 2, seed=0, max_output_tokens=CAP)
    pids = []
    try:
        for e in s.engines:
            assert isinstance(e, RemoteEngine)
            pids.append(e._proc.pid)
        assert all(p is not None and _alive(p) for p in pids)
        os.kill(pids[1], signal.SIGKILL)
        proc = processor("debate", "querywise", s.tokenizer, num_workers=2, **DEBATE)
        with pytest.raises(EngineDiedError, match=r"worker 1: vLLM engine process"):
            s.run(proc)
    finally:
        s.close()
    assert not any(_alive(p) for p in pids if p is not None)


def test_a_hung_engine_process_times_out_and_nothing_is_left(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A child that stops answering (SIGSTOP) fails the run once its step is overdue,
    naming the worker; neither the run's abort nor closing the session waits on it, and
    closing kills it."""
    monkeypatch.setattr(engine_process, "STEP_TIMEOUT_S", 2.0)
    s = open_session(TINY, _settings(True), 2, seed=0, max_output_tokens=CAP)
    pids = [e._proc.pid for e in s.engines if isinstance(e, RemoteEngine)
            and e._proc.pid is not None]
    try:
        assert len(pids) == 2 and all(_alive(p) for p in pids)
        os.kill(pids[1], signal.SIGSTOP)
        proc = processor("debate", "querywise", s.tokenizer, num_workers=2, **DEBATE)
        t0 = time.monotonic()
        with pytest.raises(EngineDiedError, match=r"worker 1: .* no answer within 2 s"):
            s.run(proc)
        # the run's own abort does not wait on the child it gave up on either
        assert time.monotonic() - t0 < engine_process.CLOSE_TIMEOUT_S
    finally:
        t0 = time.monotonic()
        s.close()
        closed_in = time.monotonic() - t0
    assert not any(_alive(p) for p in pids)
    assert closed_in < engine_process.CLOSE_TIMEOUT_S  # the stopped child was not waited on


def test_in_process_internals_are_refused_for_engine_processes(remote: VllmSession) -> None:
    with pytest.raises(ConfigError, match=r"engine\.engine_processes=false"):
        remote.local_engine(0)
