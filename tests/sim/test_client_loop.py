"""The client program's event loop and httpcore pool (sim/client_loop.py), by hand: what a
pass costs, connection reuse and keep-alive, the pile-up on the first idle connection,
and a simulation driving it (deterministic; outputs as without a client)."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest
import simpy

from helium_lab.config import Orchestration
from helium_lab.errors import ConfigError
from sim.client import ClientCost, PoolCost
from sim.client_loop import ClientLoop, PoolRequest
from sim.config import EngineConfig
from sim.cost_model import ConstantCost
from sim.driver import Simulation
from sim.errors import SimError
from sim.session import orchestration_costs
from tests.sim.fakes import BurstProcessor, ChainProcessor

COST = ClientCost(call_s=0.002)  # a request 1 ms, an answer 1 ms
POOL = PoolCost(keepalive_s=5.0, pass_s=1e-4, conn_s=1e-5, idle_s=1e-3, pair_s=1e-6)


def _call(env: simpy.Environment, loop: ClientLoop, hold_s: float, log: list[Any],
          name: str) -> Generator[simpy.Event, Any, None]:
    """One call: sent, answered `hold_s` later, handled; `log` gets (name, sent, seen)."""
    req = loop.request(10)
    yield req.sent
    sent = env.now
    yield env.timeout(hold_s)
    yield loop.answer(req, 1)
    log.append((name, sent, env.now))


def _pass(n: int, i: int) -> float:
    return POOL.pass_s + POOL.conn_s * n + POOL.idle_s * i + POOL.pair_s * n * i


def test_one_call_by_hand() -> None:
    """Enter: 1 ms + a pass on an empty pool; a new connection, connected and started
    three iterations later (no CPU meanwhile); the answer: 1 ms + a pass with the
    connection idle."""
    env = simpy.Environment()
    loop = ClientLoop(env, COST, POOL)
    log: list[Any] = []
    env.process(_call(env, loop, 1.0, log, "a"))
    env.run()
    enter = 0.001 + _pass(0, 0)
    assert log[0][1] == pytest.approx(enter)
    assert log[0][2] == pytest.approx(enter + 1.0 + 0.001 + _pass(1, 1))
    assert loop.busy_s == pytest.approx(enter + 0.001 + _pass(1, 1))
    assert (loop.opened, loop.connections, loop.idle, loop.passes) == (1, 1, 1, 2)


def test_a_connection_is_reused_within_its_keep_alive_and_dropped_after() -> None:
    """The answer of the first call arrives at about 1 s: a call made 4.9 s later reuses
    its connection, one made 5.1 s later finds it expired and opens another."""
    for wait, opened in ((4.9, 1), (5.1, 2)):
        env = simpy.Environment()
        loop = ClientLoop(env, COST, POOL)
        log: list[Any] = []

        def two(wait: float = wait, loop: ClientLoop = loop, env: simpy.Environment = env,
                log: list[Any] = log) -> Generator[simpy.Event, Any, None]:
            yield from _call(env, loop, 1.0, log, "first")
            yield env.timeout(wait)
            yield from _call(env, loop, 1.0, log, "second")

        env.process(two())
        env.run()
        assert loop.opened == opened, wait
        assert loop.connections == 1  # the expired one was dropped by the second's pass


def test_requests_entering_together_pile_onto_the_first_idle_connection() -> None:
    """Two connections idle, then three requests at once. All three are handed the first
    idle one (it stays idle until a request starts on it); the first starts on it, the
    second finds it busy and is handed the second idle one, where the third, refused in
    turn, follows it; the third finds that busy too and opens a connection. Three
    refusals, each a pass of its own."""
    env = simpy.Environment()
    loop = ClientLoop(env, COST, POOL)
    log: list[Any] = []

    def scenario() -> Generator[simpy.Event, Any, None]:
        warm = [env.process(_call(env, loop, 1.0, log, f"warm{i}")) for i in range(2)]
        yield env.all_of(warm)
        assert (loop.connections, loop.idle) == (2, 2)
        passes = loop.passes
        burst = [env.process(_call(env, loop, 1.0, log, f"burst{i}")) for i in range(3)]
        yield env.all_of(burst)
        assert loop.passes - passes == 3 + 3 + 3  # enters, refusals, answers
        assert loop.opened == 3

    env.process(scenario())
    env.run()
    sent = {name: t for name, t, _ in log}
    assert sent["burst0"] < sent["burst1"] < sent["burst2"]


def test_a_pass_costs_what_the_pool_holds() -> None:
    """Three calls at once: three connections; the answers come back together and each
    pass sees one more idle connection (N = 3, I = 1, 2, 3)."""
    env = simpy.Environment()
    loop = ClientLoop(env, COST, POOL)
    log: list[Any] = []
    for i in range(3):
        env.process(_call(env, loop, 1.0, log, str(i)))
    env.run()
    enters = 3 * 0.001 + _pass(0, 0) + _pass(1, 0) + _pass(2, 0)
    answers = 3 * 0.001 + _pass(3, 1) + _pass(3, 2) + _pass(3, 3)
    assert loop.busy_s == pytest.approx(enters + answers)


def test_answering_a_request_that_never_started_is_refused() -> None:
    env = simpy.Environment()
    loop = ClientLoop(env, COST, POOL)
    with pytest.raises(RuntimeError, match="never started"):
        loop.answer(PoolRequest(env, 1), 1)


def test_a_curve_and_a_pool_together_are_refused() -> None:
    with pytest.raises(SimError, match="give one"):
        ClientCost(call_s=0.002, concurrency=((10, 0.01),), pool=POOL)
    with pytest.raises(ConfigError, match=r"system\.orchestration\.client_concurrency"):
        Orchestration.from_dict({"client_model": "event_loop",
                                 "client_concurrency": [[10, 0.01]]})
    with pytest.raises(ConfigError, match="client_pass_idle_s must be a number >= 0"):
        Orchestration.from_dict({"client_model": "event_loop", "client_pass_idle_s": -1})


def test_the_config_builds_the_pool() -> None:
    orch = Orchestration.from_dict({"client_model": "event_loop", "client_call_s": 0.002,
                                    "client_pass_s": 1e-4, "client_pass_pair_s": 1e-6})
    client, _ = orchestration_costs(orch)
    assert client.pool == PoolCost(5.0, 1e-4, 0.0, 0.0, 1e-6)
    serial, _ = orchestration_costs(Orchestration.from_dict({"client_call_s": 0.002}))
    assert serial.pool is None


@pytest.mark.parametrize("cores", [None, 2])
def test_a_simulation_through_the_loop(cores: int | None) -> None:
    """Chained calls through the loop, on a core of its own or on shared cores: the same
    outputs as without a client, later; the client's CPU is what the loop spent; twice the
    same run gives the same records."""
    big, step = EngineConfig.of(1000), ConstantCost(step_s=0.05)
    client = ClientCost(call_s=0.002, pool=POOL)

    def run(with_client: bool) -> tuple[Any, float]:
        sim = Simulation([big], step, submit_overhead_s=0.003,
                         client=client if with_client else None, host_cores=cores)
        res = sim.run(ChainProcessor(queries=20, length=3, output_tokens=4))
        return res, sim.client_cpu_s

    bare, _ = run(False)
    looped, cpu = run(True)
    again, _ = run(True)
    assert [r.output_tokens for r in looped.records] == [r.output_tokens
                                                         for r in bare.records]
    assert looped.makespan > bare.makespan
    assert cpu > 60 * 0.002  # every call's fixed cost, plus the passes
    assert looped == again


def test_a_burst_leaves_together_once_built() -> None:
    """Requests of one burst are all built (entered) before any starts: they reach the
    engine together, after the last one's build."""
    client = ClientCost(call_s=0.01, pool=PoolCost())
    sim = Simulation([EngineConfig.of(1000)], ConstantCost(step_s=0.25), client=client)
    res = sim.run(BurstProcessor(n=4, prompt_tokens=10, output_tokens=1))
    starts = sorted(r.start_t for r in res.records)
    assert starts == pytest.approx([4 * 0.005] * 4)
