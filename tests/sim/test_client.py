"""The client program's serial CPU (sim/client.py): requests leave one after another and
responses are handled one after another, each for its measured cost."""

from __future__ import annotations

import pytest

from helium_lab.processor.calls import CallResult, LLMCall
from sim.client import ClientCost, ServerCost
from sim.config import EngineConfig
from sim.cost_model import ConstantCost
from sim.driver import Simulation
from sim.errors import SimError
from tests.sim.fakes import BurstProcessor, ChainProcessor

BIG = EngineConfig.of(1000)
STEP = ConstantCost(step_s=0.25)


def test_requests_ready_together_leave_one_after_another() -> None:
    # 4 calls of 10 prompt tokens: each request costs 0.5/2 + 0.01 * 10 = 0.35 s of client
    # CPU, so they reach the engine at 0.35, 0.70, 1.05, 1.40 (+ 0.1 s HTTP each).
    cost = ClientCost(call_s=0.5, prompt_token_s=0.01)
    proc = BurstProcessor(n=4, prompt_tokens=10, output_tokens=1)
    sim = Simulation([BIG], STEP, submit_overhead_s=0.1, client=cost)
    res = sim.run(proc)
    arrivals = sorted(r.start_t for r in res.records)  # an idle engine starts on arrival
    assert arrivals == pytest.approx([0.45, 0.80, 1.15, 1.50])
    assert all(r.submit_t == 0.0 for r in res.records)  # latency counts the client's time
    assert sim.client_cpu_s == pytest.approx(4 * 0.35 + 4 * 0.25)  # + responses: 0.5/2 each


def test_responses_wait_for_the_client_before_the_workflow_sees_them() -> None:
    seen: list[float] = []

    class Spy(ChainProcessor):
        def on_finished(self, result: CallResult) -> list[LLMCall]:
            seen.append(sim.env.now)
            return super().on_finished(result)

    # one query, two chained calls of 3 output tokens; response cost 1.0/2 + 0.1 * 3 = 0.8 s
    cost = ClientCost(call_s=1.0, output_token_s=0.1)
    sim = Simulation([BIG], STEP, client=cost)
    proc = Spy(queries=1, length=2, output_tokens=3)
    res = sim.run(proc)
    first = res.records[0]
    assert seen[0] == pytest.approx(first.finish_t + 0.8)
    second = res.records[1]
    # the follow-up is built (request cost 0.5 + 0) after the first response was handled
    assert second.start_t == pytest.approx(seen[0] + 0.5)
    assert res.makespan == pytest.approx(seen[1] - res.begin_t)  # ends when the client saw it


def test_no_client_cost_changes_nothing() -> None:
    a = Simulation([BIG], STEP, submit_overhead_s=0.1).run(ChainProcessor(queries=3, length=2,
                                                                          output_tokens=3))
    b = Simulation([BIG], STEP, submit_overhead_s=0.1, client=ClientCost()).run(
        ChainProcessor(queries=3, length=2, output_tokens=3))
    assert a == b


def test_negative_client_cost_is_refused() -> None:
    with pytest.raises(SimError, match="prompt_token_s"):
        ClientCost(prompt_token_s=-1.0)


def test_bad_orchestration_keys_are_refused_naming_the_key() -> None:
    from helium_lab.config import Orchestration
    from helium_lab.errors import ConfigError

    with pytest.raises(ConfigError, match=r"system\.orchestration\.client_call_s"):
        Orchestration.from_dict({"client_call_s": -0.001})
    with pytest.raises(ConfigError, match=r"system\.orchestration\.client_output_token_s"):
        Orchestration.from_dict({"client_output_token_s": "abc"})


def test_api_server_parses_requests_one_after_another_shared_or_per_worker() -> None:
    # 4 calls of 10 prompt tokens over 2 workers; each costs the server 0.2 + 0.01 * 10 =
    # 0.3 s after its 0.1 s transit. One server for both workers: they reach their engines
    # at 0.4, 0.7, 1.0, 1.3; one server per worker: two at a time, 0.4, 0.4, 0.7, 0.7.
    for scope, expected in (("shared", [0.4, 0.7, 1.0, 1.3]),
                            ("per_worker", [0.4, 0.4, 0.7, 0.7])):
        proc = BurstProcessor(n=4, prompt_tokens=10, output_tokens=1, workers=2)
        sim = Simulation([BIG, BIG], STEP, submit_overhead_s=0.1,
                         server=ServerCost(call_s=0.2, prompt_token_s=0.01, scope=scope))
        res = sim.run(proc)
        assert sorted(r.start_t for r in res.records) == pytest.approx(expected)


def test_bad_server_cost_is_refused_naming_the_key() -> None:
    from helium_lab.config import Orchestration
    from helium_lab.errors import ConfigError

    with pytest.raises(SimError, match="scope"):
        ServerCost(call_s=0.1, scope="cluster")
    with pytest.raises(ConfigError, match=r"system\.orchestration\.server_call_s"):
        Orchestration.from_dict({"server_call_s": -0.001})
    with pytest.raises(ConfigError, match=r"system\.orchestration\.server_scope"):
        Orchestration.from_dict({"server_scope": "global"})


def test_call_cost_follows_the_concurrency_curve_by_hand() -> None:
    """Linear from (1, call_s) through the points, flat beyond the last."""
    cost = ClientCost(call_s=0.004, concurrency=((11, 0.014), (101, 0.030)))
    got = [cost.call_at(n) for n in (1, 6, 11, 56, 101, 500)]
    # 0.004 + (0.014 - 0.004) * 5 / 10 = 0.009; 0.014 + (0.030 - 0.014) * 45 / 90 = 0.022
    assert got == pytest.approx([0.004, 0.009, 0.014, 0.022, 0.030, 0.030])
    assert ClientCost(call_s=0.004).call_at(10_000) == 0.004  # no curve: flat


def test_calls_in_flight_are_requests_less_responses_by_hand() -> None:
    """call_at(n) = 0.002, 0.005, 0.008 at n = 1, 2, 3 (one point (3, 0.008)); a request
    costs call_s / 2 = 0.001 at any n, its response the rest of call_at(n); n counts the
    event itself."""
    from sim.client import ClientCPU

    cpu = ClientCPU(ClientCost(call_s=0.002, concurrency=((3, 0.008),)))
    assert cpu.request(0.0, 0) == pytest.approx(0.001)  # n = 1
    assert cpu.request(0.0, 0) == pytest.approx(0.002)  # n = 2: no dearer
    assert cpu.request(0.0, 0) == pytest.approx(0.003)  # n = 3
    assert cpu.response(1.0, 0) == pytest.approx(1.007)  # n = 3: 0.008 - 0.001, then 2
    assert cpu.response(2.0, 0) == pytest.approx(2.004)  # n = 2: 0.005 - 0.001, then 1
    assert cpu.request(3.0, 0) == pytest.approx(3.001)  # n = 2
    assert cpu.in_flight == 2


def test_a_curve_below_the_send_side_is_refused() -> None:
    with pytest.raises(SimError, match=r"costs >= call_s / 2"):
        ClientCost(call_s=0.004, concurrency=((10, 0.0019),))


def test_the_curve_slows_a_burst_and_is_off_by_default() -> None:
    """64 calls at once: with the curve each call costs more as the burst piles up; without
    it (the default) nothing changes."""
    proc_args = {"n": 64, "prompt_tokens": 10, "output_tokens": 1}
    plain = Simulation([BIG], STEP, client=ClientCost(call_s=0.004)).run(
        BurstProcessor(**proc_args))
    curved = Simulation([BIG], STEP, client=ClientCost(
        call_s=0.004, concurrency=((50, 0.03),))).run(BurstProcessor(**proc_args))
    assert curved.makespan > plain.makespan
    assert ClientCost().concurrency == () and not ClientCost().active
    with pytest.raises(SimError, match="concurrency"):
        ClientCost(concurrency=((10, 0.01), (5, 0.02)))
    with pytest.raises(SimError, match="concurrency"):
        ClientCost(concurrency=((1, 0.01),))


def test_a_bad_concurrency_curve_names_its_key() -> None:
    from helium_lab.config import Orchestration
    from helium_lab.errors import ConfigError

    key = r"system\.orchestration\.client_concurrency"
    with pytest.raises(ConfigError, match=key + r"\[1\]"):
        Orchestration.from_dict({"client_concurrency": [[10, 0.01], [5, 0.02]]})
    with pytest.raises(ConfigError, match=key + r"\[0\]"):
        Orchestration.from_dict({"client_concurrency": [[10, "fast"]]})
    with pytest.raises(ConfigError, match=key):
        Orchestration.from_dict({"client_concurrency": 0.01})
    ok = Orchestration.from_dict({"client_concurrency": [[10, 0.01], [50, 0.02]]})
    assert ok.client_concurrency == ((10.0, 0.01), (50.0, 0.02))
