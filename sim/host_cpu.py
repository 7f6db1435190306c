"""The host's CPU cores shared by the processes of a run: processor sharing.

Where an engine runs on a GPU, its host has cores to spare and the client program, the API
server and the engine's scheduler never wait for one another's CPU. On the CPU machine
`validate_sim` runs on, they do: a baseline's real run there has three busy threads, its
client program (one Python thread), vLLM's API server process and vLLM's engine core
(one OpenMP thread: runtime/serve.py sets `OMP_NUM_THREADS=1`), on 2 cores. Linux's fair
scheduler (EEVDF on the 6.18 kernel measured) then gives each of k runnable threads about
min(1, cores / k) of a core, so while all three are busy each advances at 2/3 of its solo
speed. That holds while they share one scheduling group: with autogroup on, a process
in a session of its own is a group of its own, and a server there left the client 0.10-0.16
of a core where this model gives it 0.67-0.76 (docs/client_overhead.md, "the host's
scheduler"); runtime/serve.py keeps the servers in the caller's session.

`SharedCores(env, cores)` is that scheduler as a fluid model: `work(s)` is an event that
fires once `s` seconds of CPU have been served to it, and while jobs weighing w runnable threads
in all are in progress each thread is served at min(1, cores / w) CPU-seconds per second.
A job may weigh more than the one thread doing its work (`work(s, threads=1.6)`): vLLM's
engine core and its worker process hand each step over through shared memory, and the
side waiting busy-polls it (`shm_broadcast.SpinCondition`: `sched_yield()` in a loop for
1 s after each read), so while an API server's engine steps, its engine core takes a share
of the cores beside the worker. Yielding, the poller takes less than a full thread's
share: the weight is the thread count the job's CPU use amounts to (measured per run,
`validate_sim`: 1 + engine core CPU / worker CPU). `CoreThread` is one thread on those
cores: its work items run one after another, first come first served (the client
program's event loop, the API server's). An engine whose steps are CPU work runs each step
as `work(step time)`, the step time being its cost model's solo time.

Pure arithmetic on the simulated clock: deterministic (jobs are kept in arrival order and
finish in that order when they finish together).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Generator
from typing import Any

import simpy

from sim.errors import SimError

_EPS = 1e-12  # CPU seconds left that count as done (float residue of the rate products)


class SharedCores:
    """`cores` CPU cores shared equally by the jobs in progress (processor sharing)."""

    def __init__(self, env: simpy.Environment, cores: int) -> None:
        if cores < 1:
            raise SimError(f"host cores must be >= 1, got {cores}")
        self.env = env
        self.cores = cores
        self._jobs: dict[int, list[Any]] = {}  # id -> [CPU s left, event, threads], by arrival
        self._next_id = 0
        self._last = env.now  # when the jobs' remaining work was last brought up to date
        self._epoch = 0  # bumped at every change: a completion timer of an older one is void

    def _rate(self) -> float:
        threads = sum(job[2] for job in self._jobs.values())
        return min(1.0, self.cores / threads) if threads else 1.0

    def _advance(self) -> None:
        dt = self.env.now - self._last
        if dt > 0 and self._jobs:
            served = dt * self._rate()
            for job in self._jobs.values():
                job[0] -= served
        self._last = self.env.now

    def work(self, seconds: float, threads: float = 1.0) -> simpy.Event:
        """An event that fires when `seconds` of CPU have been served to this job, whose
        runnable threads weigh `threads` (>= 1): one of them does the work at a thread's
        rate, the rest only take shares."""
        if seconds < 0:
            raise SimError(f"CPU work must be >= 0 s, got {seconds}")
        if threads < 1:
            raise SimError(f"a CPU job weighs >= 1 runnable thread, got {threads}")
        done = self.env.event()
        if seconds == 0:
            done.succeed()
            return done
        self._advance()
        self._jobs[self._next_id] = [seconds, done, threads]
        self._next_id += 1
        self._reschedule()
        return done

    def _reschedule(self) -> None:
        self._epoch += 1
        if not self._jobs:
            return
        first = min(job[0] for job in self._jobs.values())
        timer = self.env.timeout(max(0.0, first) / self._rate())
        epoch = self._epoch
        timer.callbacks.append(lambda _: self._on_timer(epoch))

    def _on_timer(self, epoch: int) -> None:
        if epoch != self._epoch:
            return  # a job arrived or left since: a newer timer stands
        self._advance()
        finished = [jid for jid, job in self._jobs.items() if job[0] <= _EPS]
        for jid in finished:
            self._jobs.pop(jid)[1].succeed()
        self._reschedule()


class CoreThread:
    """One thread on shared cores: its work items run in submission order, one at a time."""

    def __init__(self, cores: SharedCores) -> None:
        self.cores = cores
        self.env = cores.env
        self._queue: deque[tuple[float, simpy.Event]] = deque()
        self._running = False
        self.busy_s = 0.0  # CPU seconds of all work queued so far

    def run(self, work_s: float) -> simpy.Event:
        """Queue `work_s` of CPU now; the event fires when it is done."""
        done = self.env.event()
        self.busy_s += work_s
        self._queue.append((work_s, done))
        if not self._running:
            self._running = True
            self.env.process(self._serve())
        return done

    def _serve(self) -> Generator[simpy.Event, Any, None]:
        while self._queue:
            work_s, done = self._queue.popleft()
            yield self.cores.work(work_s)
            done.succeed()
        self._running = False
