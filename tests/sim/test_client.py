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

BIG = EngineConfig(num_gpu_blocks=1000)
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


def test_pool_passes_follow_the_connections_by_hand() -> None:
    """httpcore's pool pass, charged per request and per response (one pass each):
    pass(N, I) = 3.6367 + 0.24156 N + 14.82862 I + 0.3198141 N I µs."""
    from sim.client import ClientCPU, pool_pass_s

    c0, cn, ci, cp = 3.6367e-6, 0.24156e-6, 14.82862e-6, 0.3198141e-6
    cpu = ClientCPU(ClientCost(call_s=0.002, pool_passes=1.0, keepalive_s=5.0))
    # t=0: empty pool (N=0, I=0): 0.001 + c0; a new connection opens
    assert cpu.request(0.0, 0) == pytest.approx(0.001 + c0)
    # t=1: its response closes: N=1 with it idle (I=1): 0.001 + c0 + cn + ci + cp
    assert cpu.response(1.0, 0) == pytest.approx(1.0 + 0.001 + c0 + cn + ci + cp)
    # t=2: a request sees N=1, I=1 and reuses that connection (no new one)
    assert cpu.request(2.0, 0) == pytest.approx(2.0 + 0.001 + c0 + cn + ci + cp)
    assert (cpu.busy, len(cpu.idle)) == (1, 0)
    # t=2.5: two more requests open connections 2 and 3 (N=1, then 2; nothing idle)
    assert cpu.request(2.5, 0) == pytest.approx(2.5 + 0.001 + c0 + cn)
    assert cpu.request(2.5, 0) == pytest.approx(2.5 + 0.002 + (c0 + cn) + (c0 + 2 * cn))
    # t=3: one closes (N=3, I=1); t=9: its keep-alive (5 s) ran out: N=2, I=0
    cpu.response(3.0, 0)
    assert cpu._pass_s(9.0) == pytest.approx(pool_pass_s(2, 0)) == pytest.approx(c0 + 2 * cn)


def test_pool_state_changes_when_the_thread_reaches_the_event() -> None:
    """A response that waits behind a backlog closes its connection (and starts its 5 s
    keep-alive) when the thread reaches it, not when it arrives."""
    from sim.client import ClientCPU, pool_pass_s

    c0, cn, ci, cp = 3.6367e-6, 0.24156e-6, 14.82862e-6, 0.3198141e-6
    cpu = ClientCPU(ClientCost(call_s=0.002, prompt_token_s=0.001, pool_passes=1.0,
                               keepalive_s=5.0))
    # t=0: r1 (0 tokens) on an empty pool: 0.001 + c0; r2 (10,000 tokens) right behind it,
    # one busy connection: 0.001 + 10 + c0 + cn
    a1 = cpu.request(0.0, 0)
    assert a1 == pytest.approx(0.001 + c0)
    a2 = cpu.request(0.0, 10_000)
    assert a2 == pytest.approx(a1 + 10.001 + c0 + cn)
    # t=1: r1's response arrives while r2 is being built; the thread reaches it at a2 and
    # closes it there: N=2, I=1 -> 0.001 + c0 + 2 cn + ci + 2 cp
    assert cpu.response(1.0, 0) == pytest.approx(a2 + 0.001 + c0 + 2 * cn + ci + 2 * cp)
    # its keep-alive runs from a2 (~10 s), so it is still idle at a2 + 4.9 (~14.9 s; it
    # would have expired at 6 s counted from the arrival) and gone at a2 + 5.1
    assert cpu._pass_s(a2 + 4.9) == pytest.approx(pool_pass_s(2, 1))
    assert cpu._pass_s(a2 + 5.1) == pytest.approx(pool_pass_s(1, 0))


def test_pool_passes_slow_a_burst_and_are_off_by_default() -> None:
    """64 calls at once: with the pool modelled the client's CPU grows with the idle
    connections the burst leaves; without it (the default) nothing changes."""
    proc_args = {"n": 64, "prompt_tokens": 10, "output_tokens": 1}
    plain = Simulation([BIG], STEP, client=ClientCost(call_s=0.004)).run(
        BurstProcessor(**proc_args))
    pooled = Simulation([BIG], STEP, client=ClientCost(call_s=0.004, pool_passes=2.5)).run(
        BurstProcessor(**proc_args))
    assert pooled.makespan > plain.makespan
    assert ClientCost().pool_passes == 0.0 and not ClientCost().active
    with pytest.raises(SimError, match="pool_passes"):
        ClientCost(pool_passes=-1)


def test_pool_pass_constants_are_the_measured_fit() -> None:
    """`POOL_PASS_US` is the fit recorded by runtime/client_overhead (its source)."""
    import json
    from pathlib import Path

    from sim.client import POOL_PASS_US

    data = json.loads((Path(__file__).resolve().parents[2] / "conf" / "orchestration"
                       / "client_overhead.json").read_text())
    fit = data["pool_fit"]
    measured = (fit["c0_us"], fit["c_conn_us"], fit["c_idle_us"], fit["c_pair_us"])
    assert measured == POOL_PASS_US
