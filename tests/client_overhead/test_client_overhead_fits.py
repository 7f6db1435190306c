"""The pure parts of `runtime.client_overhead` (fits and the orchestration keys): no mock
server, no network, no client library. Kept out of tests/runtime, whose conftest skips
every test there when vLLM is not installed."""

from __future__ import annotations

import itertools
import time

import pytest

from runtime.client_overhead.fits import (
    fit_sizes,
    orchestration_keys,
    pool_model_ms,
    predict_sizes,
    r2,
)
from runtime.client_overhead.pool import fit_pool
from runtime.client_overhead.workloads import Point, Sample


def test_fit_sizes_recovers_known_coefficients() -> None:
    a, b, c = 3.9, 0.0208, 0.45
    points = [{"prompt_kchars_per_call": p, "output_kchars_per_call": o,
               "cpu_ms_per_call": a + b * p + c * o}
              for p, o in itertools.product([0.8, 8.0, 32.0], [0.256, 2.048])]
    f = fit_sizes(points)
    assert f["a_ms"] == pytest.approx(a, abs=1e-4)
    assert f["b_ms_per_prompt_kchar"] == pytest.approx(b, abs=1e-4)
    assert f["c_ms_per_output_kchar"] == pytest.approx(c, abs=1e-4)
    assert f["r2"] == 1.0
    assert f["max_abs_residual_ms"] == pytest.approx(0.0, abs=1e-4)
    assert f["points"] == 6
    assert predict_sizes(f, 10.0, 1.0) == pytest.approx(a + 10 * b + c, abs=1e-3)


def test_fit_sizes_on_point_summaries() -> None:
    """The rows the grid writes (`Point.summary`) are what `fit_sizes` reads."""
    rows = []
    for p_tok, o_tok in itertools.product([200, 2000], [64, 512]):
        pt = Point("httpx", p_tok, o_tok, "1")
        p_ch, o_ch = 4 * p_tok + 70, 4 * o_tok  # content characters per call
        ms = 1.5 + 0.1 * p_ch / 1e3 + 0.3 * o_ch / 1e3
        pt.samples.append(Sample(cpu_s=100 * ms / 1e3, user_s=0.0, sys_s=0.0, wall_s=1.0,
                                 calls=100, prompt_chars=100 * p_ch, output_chars=100 * o_ch,
                                 pool_connections=1))
        rows.append(pt.summary())
    assert rows[0]["prompt_kchars_per_call"] == 0.87
    f = fit_sizes(rows)
    assert (f["a_ms"], f["b_ms_per_prompt_kchar"], f["c_ms_per_output_kchar"]) == \
        pytest.approx((1.5, 0.1, 0.3), abs=2e-3)  # summary() rounds cpu_ms to 4 decimals


def test_fit_pool_recovers_known_coefficients() -> None:
    c0, c_conn, c_idle, c_pair = 4.0, 0.3, 2.5, 0.012
    points = [{"connections": n, "idle": i,
               "pass_us": c0 + c_conn * n + c_idle * i + c_pair * n * i}
              for n in (16, 64, 256, 1024) for i in (0, n // 2, n)]
    f = fit_pool(points)
    assert f["c0_us"] == pytest.approx(c0, abs=1e-3)
    assert f["c_conn_us"] == pytest.approx(c_conn, abs=1e-4)
    assert f["c_idle_us"] == pytest.approx(c_idle, abs=1e-4)
    assert f["c_pair_us"] == pytest.approx(c_pair, abs=1e-6)
    assert f["r2"] == 1.0
    assert f["max_rel_residual"] == pytest.approx(0.0, abs=1e-4)
    stats = {"pool_passes_per_call": 2.0, "pool_mean_connections": 10.0,
             "pool_mean_idle": 4.0, "pool_mean_conn_x_idle": 40.0}
    per_pass_us = c0 + c_conn * 10 + c_idle * 4 + c_pair * 40
    assert pool_model_ms(f, stats) == pytest.approx(2 * per_pass_us / 1e3, rel=1e-4)


def test_r2() -> None:
    import numpy as np

    y = np.array([1.0, 2.0, 3.0])
    assert r2(y, y) == 1.0
    assert r2(y, np.full(3, 2.0)) == 0.0
    assert r2(np.ones(3), np.zeros(3)) == 1.0  # constant data: defined as 1


def test_orchestration_keys() -> None:
    fits = {
        "openai": {"a_ms": 3.902, "b_ms_per_prompt_kchar": 0.0208,
                   "c_ms_per_output_kchar": 0.05},
        "langgraph_mapred": {"a_ms": 5.84, "b_ms_per_prompt_kchar": 0.038,
                             "c_ms_per_output_kchar": -0.01},  # below noise: 0
    }
    keys = orchestration_keys(fits)
    assert set(keys) == set(fits)
    for k in keys.values():
        assert set(k) == {"client_call_s", "client_prompt_token_s", "client_output_token_s"}
    # the values conf/system/client/asyncopenai.yaml holds (4 characters a token)
    assert keys["openai"]["client_call_s"] == 0.003902
    assert keys["openai"]["client_prompt_token_s"] == 8.32e-08
    assert keys["openai"]["client_output_token_s"] == 2e-07
    assert keys["langgraph_mapred"]["client_call_s"] == 0.00584
    assert keys["langgraph_mapred"]["client_prompt_token_s"] == 1.52e-07
    assert keys["langgraph_mapred"]["client_output_token_s"] == 0.0


def test_orchestration_keys_match_the_recorded_report() -> None:
    """The committed report's keys are what `orchestration_keys` gives for its fits."""
    import json
    from pathlib import Path

    report = Path(__file__).resolve().parents[2] / "conf/orchestration/client_overhead.json"
    data = json.loads(report.read_text())
    assert orchestration_keys(data["size_fits"]) == data["orchestration_keys_this_machine"]


def test_mock_server_answer_delays() -> None:
    """`/hold/<ms>/` answers <ms> ms after arrival; `/wave/<ms>/` answers every call of a
    period together at its end (as an engine ends a batch); other paths at once."""
    from runtime.client_overhead.mock_server import answer_delay

    assert answer_delay(b"/hold/2000/v1/chat/completions", 7.25) == 2.0
    assert answer_delay(b"/wave/2000/v1/chat/completions", 7.25) == pytest.approx(0.75)
    assert answer_delay(b"/wave/2000/v1/chat/completions", 6.0) == pytest.approx(2.0)
    arrivals = (10.1, 10.9, 11.95)  # one period: all answered at 12.0
    assert {round(t + answer_delay(b"/wave/2000/v1", t), 9) for t in arrivals} == {12.0}
    assert answer_delay(b"/v1/chat/completions", 3.0) == 0.0


@pytest.mark.parametrize("server", ["asyncio", "uvicorn"])
def test_mock_servers_answer_alike(server: str) -> None:
    """Both mock servers answer a chat completion with `max_tokens` words and 404 elsewhere,
    bound to 127.0.0.1, and are gone when the context ends."""
    import json

    import httpx

    from runtime.client_overhead.mock_server import mock_server

    with mock_server(server=server) as url:
        assert url.startswith("http://127.0.0.1:")
        with httpx.Client(timeout=30) as http:
            r = http.post(f"{url}/chat/completions",
                          json={"model": "m", "max_tokens": 5,
                                "messages": [{"role": "user", "content": "hi"}]})
            assert r.status_code == 200
            words = json.loads(r.content)["choices"][0]["message"]["content"].split()
            assert len(words) == 5
            held = http.post(url.replace("/v1", "/hold/50/v1") + "/chat/completions",
                             json={"model": "m", "max_tokens": 2, "messages": []})
            assert held.status_code == 200
            assert http.get(f"{url}/models").status_code == 404
    with pytest.raises(httpx.ConnectError), httpx.Client(timeout=5) as http:
        http.get(f"{url}/models")


def test_a_recording_mock_notes_arrivals_with_the_clients_cpu() -> None:
    """Each POST is noted with this process's CPU at arrival; `fetch_arrivals` takes the
    notes and clears them; a server not recording notes nothing."""
    import httpx

    from runtime.client_overhead.mock_server import fetch_arrivals, mock_server

    def burn(s: float) -> None:
        end = time.process_time() + s
        while time.process_time() < end:
            pass

    body = {"model": "m", "max_tokens": 1, "messages": []}
    with mock_server(record_arrivals=True) as url, httpx.Client(timeout=30) as http:
        cpu0 = time.process_time()
        http.post(f"{url}/chat/completions", json=body)
        burn(0.1)
        http.post(f"{url}/chat/completions", json=body)
        notes = fetch_arrivals(url)
        assert fetch_arrivals(url) == []
    assert len(notes) == 2 and notes[0][0] < notes[1][0]
    assert notes[0][1] <= cpu0 + 0.05  # 10-ms ticks: the first arrival before the burn
    assert notes[1][1] - notes[0][1] >= 0.08  # the burn between them, to a tick or two
    with mock_server() as url, httpx.Client(timeout=30) as http:
        http.post(f"{url}/chat/completions", json=body)
        assert fetch_arrivals(url) == []


def test_send_side_by_hand() -> None:
    """0.3 s of client CPU before the first arrival, then 3 arrivals 1 ms apart (the flush)
    and one 0.5 s later: 100 ms of send per flushed call, a third of 300 ms per call."""
    from runtime.client_overhead.measure import send_side

    arrivals = [(10.0, 1.3), (10.001, 1.3), (10.002, 1.31), (10.5, 1.5), (13.0, 2.0)]
    got = send_side(arrivals, 1.0, 4, 300.0, hold_s=2.0)
    assert got["flush_calls"] == 3 and got["window_calls"] == 4
    assert got["send_ms"] == pytest.approx(100.0) and got["share"] == pytest.approx(1 / 3)
    assert got["window_cpu_s"] == pytest.approx(0.2)
    with pytest.raises(ValueError, match="no arrivals"):
        send_side([], 1.0, 4, 300.0, hold_s=2.0)


def test_held_chains_run_each_items_calls_in_turn() -> None:
    """`openai_chain` (OpWise's shape): 3 items of 5 calls against the uvicorn mock, each
    prompt after an item's first carrying the previous answer."""
    import asyncio

    from runtime.client_overhead.held import measure_held
    from runtime.client_overhead.mock_server import mock_server

    with mock_server(server="uvicorn") as url:
        m = asyncio.run(measure_held(url, 15, 20, 50, 3, 4, "openai_chain"))
    assert m["kind"] == "openai_chain" and m["calls"] == 15
    # one call in flight per item at most: the pool never sees more requests than items
    assert m["pool_max_requests"] <= 3
