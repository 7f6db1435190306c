"""The client program's event loop and httpcore pool (sim/client_loop.py), by hand: what a
pass costs, connection reuse and keep-alive, the pile-up on the first idle connection,
and a simulation driving it (deterministic; outputs as without a client)."""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import replace
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


def _answered_together(pool: PoolCost, names: str) -> tuple[ClientLoop, dict[str, float]]:
    """One call per name, all started, then all answered at t = 1 (in name order); the
    times each answer was handled (seen)."""
    env = simpy.Environment()
    loop = ClientLoop(env, COST, pool)
    seen: dict[str, float] = {}

    def scenario() -> Generator[simpy.Event, Any, None]:
        reqs = {name: loop.request(10) for name in names}
        yield env.all_of([r.sent for r in reqs.values()])
        yield env.timeout(1.0 - env.now)
        done = {name: loop.answer(r, 1) for name, r in reqs.items()}
        for name, ev in done.items():
            ev.callbacks.append(lambda _, name=name: seen.__setitem__(name, env.now))
        yield env.all_of(list(done.values()))

    env.process(scenario())
    env.run()
    return loop, seen


def test_answers_handled_over_several_hops_advance_in_lockstep() -> None:
    """Two answers at once, 1 ms of CPU each. In one hop the first is handled whole before
    the second starts; in four (the connection freed at the second) every hop of one waits
    for the same hop of the other, so the first is told only after three quarters of the
    second's CPU too. The CPU in all is the same."""
    one, seen1 = _answered_together(POOL, "ab")
    four, seen4 = _answered_together(replace(POOL, answer_hops=4, release_hop=2), "ab")
    passes = _pass(2, 1) + _pass(2, 2)
    assert seen1["a"] - 1.0 == pytest.approx(0.001 + _pass(2, 1))
    assert seen4["a"] - 1.0 == pytest.approx(0.001 + 0.00075 + passes)
    assert seen1["b"] == pytest.approx(seen4["b"])
    assert (one.idle, four.idle) == (2, 2)
    assert one.busy_s == pytest.approx(four.busy_s)


def test_a_request_enters_its_hops_after_the_workflow_emits_it() -> None:
    """A request emitted as an answer arrives whose handling takes ten hops of 0.1 ms (a
    clock of iterations): two more request hops start it two answer hops later."""
    def sent_at(request_hops: int) -> float:
        env = simpy.Environment()
        pool = replace(POOL, answer_hops=10, release_hop=1, request_hops=request_hops)
        loop = ClientLoop(env, COST, pool)
        out: list[float] = []

        def scenario() -> Generator[simpy.Event, Any, None]:
            first = loop.request(10)
            yield first.sent
            yield env.timeout(1.0 - env.now)
            loop.answer(first, 1)
            follow = loop.request(10)
            yield follow.sent
            out.append(env.now)

        env.process(scenario())
        env.run()
        return out[0]

    assert sent_at(5) - sent_at(3) == pytest.approx(2 * 0.0001)
    assert sent_at(3) > sent_at(1)


def test_hops_out_of_range_are_refused() -> None:
    with pytest.raises(SimError, match="release_hop"):
        PoolCost(answer_hops=2, release_hop=3)
    with pytest.raises(SimError, match="request_hops"):
        PoolCost(request_hops=0)
    with pytest.raises(ConfigError, match=r"system\.orchestration\.client_answer_hops"):
        Orchestration.from_dict({"client_answer_hops": 1.5})
    with pytest.raises(ConfigError, match=r"client_release_hop \(3\) must be <="):
        Orchestration.from_dict({"client_answer_hops": 2, "client_release_hop": 3})


def test_answering_a_request_that_never_started_is_refused() -> None:
    env = simpy.Environment()
    loop = ClientLoop(env, COST, POOL)
    with pytest.raises(SimError, match="never started"):
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
                                    "client_pass_s": 1e-4, "client_pass_pair_s": 1e-6,
                                    "client_answer_hops": 13, "client_release_hop": 2,
                                    "client_request_hops": 8})
    client, _ = orchestration_costs(orch)
    assert client.pool == PoolCost(5.0, 1e-4, 0.0, 0.0, 1e-6, 13, 2, 8)
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
