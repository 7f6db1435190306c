"""Shared host cores (sim/host_cpu.py): processor sharing by hand, and a simulation whose
client, API server and engine run on too few cores for all three."""

from __future__ import annotations

from collections.abc import Generator

import pytest
import simpy

from sim.client import ClientCost, ServerCost
from sim.config import EngineConfig
from sim.cost_model import ConstantCost
from sim.driver import Simulation
from sim.errors import SimError
from sim.host_cpu import CoreThread, SharedCores
from tests.sim.fakes import BurstProcessor, ChainProcessor

BIG = EngineConfig.of(1000)
STEP = ConstantCost(step_s=0.25)


def _finish_times(cores: int, jobs: list[tuple[float, float]]) -> list[float]:
    """When each (arrival, CPU seconds) job finishes on `cores` shared cores."""
    env = simpy.Environment()
    shared = SharedCores(env, cores)
    done: list[float] = [0.0] * len(jobs)

    def job(i: int, at: float, work: float) -> Generator[simpy.Event, None, None]:
        yield env.timeout(at)
        yield shared.work(work)
        done[i] = env.now

    for i, (at, work) in enumerate(jobs):
        env.process(job(i, at, work))
    env.run()
    return done


def test_three_jobs_on_two_cores_each_run_at_two_thirds() -> None:
    assert _finish_times(2, [(0, 1.0)] * 3) == pytest.approx([1.5] * 3)
    assert _finish_times(2, [(0, 1.0)] * 2) == pytest.approx([1.0] * 2)  # a core each
    assert _finish_times(4, [(0, 1.0)] * 3) == pytest.approx([1.0] * 3)


def test_rates_change_as_jobs_come_and_go_by_hand() -> None:
    # one core; A (1 s) at 0 runs alone until B (1 s) arrives at 0.5, then both at half
    # speed: A's last 0.5 s takes until 1.5; B has had 0.5 s by then, alone again: 2.0
    assert _finish_times(1, [(0, 1.0), (0.5, 1.0)]) == pytest.approx([1.5, 2.0])
    # two cores, three jobs of 1, 2, 3 s at 0: 2/3 each until A ends at 1.5 (B, C have
    # 1.0 done); then a core each: B at 2.5, C at 3.5
    assert _finish_times(2, [(0, 1.0), (0, 2.0), (0, 3.0)]) == pytest.approx([1.5, 2.5, 3.5])


def test_a_thread_runs_its_items_one_after_another() -> None:
    env = simpy.Environment()
    thread = CoreThread(SharedCores(env, 2))
    ends: list[float] = []
    for work in (0.5, 0.25, 1.0):
        thread.run(work).callbacks.append(lambda _: ends.append(env.now))
    env.run()
    assert ends == pytest.approx([0.5, 0.75, 1.75])
    assert thread.busy_s == pytest.approx(1.75)


def test_bad_core_count_is_refused() -> None:
    with pytest.raises(SimError, match="host cores"):
        SharedCores(simpy.Environment(), 0)


def test_enough_cores_change_no_time() -> None:
    # client, server and engine each on a core of their own: the same run as without
    client = ClientCost(call_s=0.02, prompt_token_s=1e-4)
    server = ServerCost(call_s=0.01, prompt_token_s=1e-5)

    def run(cores: int | None) -> list[float]:
        sim = Simulation([BIG], STEP, submit_overhead_s=0.003, client=client, server=server,
                         host_cores=cores, fast_decode=False)
        res = sim.run(ChainProcessor(queries=6, length=3, output_tokens=4))
        return [t for r in res.records for t in (r.start_t, r.finish_t)] + [res.makespan]

    assert run(3) == pytest.approx(run(None))


def test_too_few_cores_slow_every_party_down() -> None:
    # a burst whose client, server and engine are all busy at once: on one core the run
    # takes at least their CPU summed; on three it overlaps them (costs off the step's
    # grid, so that no arrival ties with a step's end, whose order differs between paths)
    client = ClientCost(call_s=0.213)
    server = ServerCost(call_s=0.107)

    def makespan(cores: int | None) -> tuple[float, float]:
        sim = Simulation([BIG], STEP, client=client, server=server, host_cores=cores,
                         fast_decode=False)
        res = sim.run(BurstProcessor(n=8, prompt_tokens=20, output_tokens=3))
        engine_s = STEP.step_s * sum(s.steps for s in res.timeseries[0])
        return res.makespan, sim.client_cpu_s + 8 * 0.107 + engine_s

    alone, _ = makespan(None)
    one, cpu = makespan(1)
    assert one >= cpu - 1e-9  # one core: nothing overlaps
    assert alone < cpu
    assert makespan(3)[0] == pytest.approx(alone)
    assert makespan(2)[0] > alone


@pytest.mark.parametrize(("weight", "shared_end", "refused"), [
    # an engine step of 1 s holding 2 threads (worker + polling engine core) and a client
    # job of 1 s: 3 threads, each served 2/3 of a core, both end at 1.5
    (2.0, 1.5, 0.0),
    # a step weighing 1.5 threads (a worker and a yielding poller) beside the client job:
    # 2.5 threads, each served 2 / 2.5 = 0.8 of a core, both end at 1.25
    (1.5, 1.25, 0.5),
])
def test_a_job_takes_the_shares_of_its_thread_weight(weight: float, shared_end: float,
                                                     refused: float) -> None:
    env = simpy.Environment()
    shared = SharedCores(env, 2)
    ends: list[float] = []
    for threads in (weight, 1.0):
        shared.work(1.0, threads).callbacks.append(lambda _: ends.append(env.now))
    env.run()
    assert ends == pytest.approx([shared_end, shared_end])
    # alone on the two cores the step runs at a full core (weight <= cores)
    shared.work(1.0, weight).callbacks.append(lambda _: ends.append(env.now))
    env.run()
    assert ends[-1] == pytest.approx(shared_end + 1.0)
    with pytest.raises(SimError, match="runnable thread"):
        shared.work(1.0, refused)
