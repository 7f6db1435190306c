"""The client program's asyncio event loop and its httpcore connection pool, step by step.

A baseline's client program (LangGraph's `abatch`, AsyncOpenAI tasks) runs every call in
one asyncio event loop over one httpx client, whose httpcore 1.0 connection pool has no
limit (HD `bench_programs/utils/common.py`). What a call costs there depends on the pool's
state, and that state on how the loop interleaves the calls. `ClientLoop` follows both
(read from httpcore 1.0.9 `_async/connection_pool.py`, `connection.py`, `http11.py` and
anyio 4's `Lock`; docs/client_overhead.md, "the pile-up"):

- **Iterations.** The loop runs what became ready (steps scheduled by the previous
  iteration, answers that arrived) one step after another, each charging its CPU; what a
  step schedules runs in a later iteration. An answer is read in the iteration after it
  arrives; a request the workflow emits enters `request_hops` iterations later.
- **Entering the pool.** A request's first step builds it (`ClientCost.request_s`) and
  makes one assignment pass, which hands it the first idle connection in the pool's order
  (`available_connections[0]`) or, with none idle, a new one. An HTTP/1.1 connection
  stays idle until a request actually starts on it, so every request that enters before
  then is handed the same connection.
- **Starting.** A request starts by taking its connection's request lock, then its state
  lock. Taking a free anyio lock yields to the loop once (the lock held meanwhile); a held
  one queues its takers, woken one per release. A request that then finds the connection
  busy or closed (`ConnectionNotAvailable`) makes another pass and is assigned again. A
  new connection is connected with its request lock held (its TCP connect read in the
  next iteration), then used.
- **Answers.** Handling one costs `ClientCost.response_s`, spread over the program's
  `answer_hops` iterations from the one that read it (the depth of its await chain:
  LangGraph's is 13, AsyncOpenAI's 3; `scripts/loop_depth.py`); closing it, at hop
  `release_hop`, leaves its connection idle and makes a pass; the workflow is told at
  the last hop. A request the workflow emits enters `request_hops` iterations later.
  With hundreds of answers in flight each iteration runs one hop of every one, so they
  advance in lockstep.
- **Keep-alive.** Each pass first drops the connections whose keep-alive ran out: the
  server closes a connection `keepalive_s` after it sent the answer (uvicorn's
  `timeout_keep_alive`, 5 s in vLLM's server), httpx `keepalive_expiry` after the client
  closed it (5 s by default, later), so a connection expires `keepalive_s` after its
  answer arrived.
- **A pass costs** `pass_s + conn_s N + idle_s I + pair_s N I` with N connections open, I
  of them idle (`PoolCost`; measured, docs/client_overhead.md part 2): httpcore's cleanup
  loop builds a list of all N connections for each idle one.

When hundreds of answers free connections while the workflow's next requests enter, the
requests pile onto the first idle connections and start one per lock release while every
pass walks N x I; the pile clears when the idle connections expire. Checked against the
client programs run against a mock server holding every answer (`python -m
experiments.client_held --predict-only`: 21 configurations, none fitted).

Deterministic: a SimPy process on the simulated clock.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Generator
from typing import Any

import simpy

from sim.client import ClientCost, PoolCost
from sim.errors import SimError

# connection states (httpcore's HTTPConnectionState, with NEW covering the connect)
NEW, IDLE, ACTIVE, CLOSED = "new", "idle", "active", "closed"


class _Lock:
    """An anyio lock: its owner and its waiting takers, first come first served."""

    __slots__ = ("owner", "waiters")

    def __init__(self) -> None:
        self.owner: PoolRequest | None = None
        self.waiters: deque[tuple[PoolRequest, str]] = deque()


class _Conn:
    __slots__ = ("request_lock", "seq", "state", "state_lock", "token")

    def __init__(self, seq: int) -> None:
        self.seq = seq  # the pool's order: creation
        self.state = NEW
        self.token = 0  # bumped each time it goes idle (lazy heap entries)
        self.request_lock = _Lock()
        self.state_lock = _Lock()


class PoolRequest:
    """One call's request through the loop: `sent` fires when it starts on a connection."""

    __slots__ = (
        "arrived_t",
        "conn",
        "hop",
        "hop_s",
        "owns_new",
        "prompt_tokens",
        "seen",
        "sent",
    )

    def __init__(self, env: simpy.Environment, prompt_tokens: int) -> None:
        self.prompt_tokens = prompt_tokens
        self.hop_s = 0.0  # the answer's CPU per handling hop
        self.sent = env.event()
        self.conn: _Conn | None = None
        self.owns_new = False  # created `conn` for itself (a NEW connection is not shared)
        self.arrived_t = 0.0
        self.hop = 0  # the answer's handling steps run so far
        self.seen: simpy.Event | None = None


class ClientLoop:
    """The client program's loop and pool (module docstring). `run_cpu(seconds)` is how
    its CPU is charged: a core of its own (None: a timeout) or a thread on shared cores."""

    def __init__(self, env: simpy.Environment, cost: ClientCost, pool: PoolCost,
                 run_cpu: Callable[[float], simpy.Event] | None = None) -> None:
        self.env = env
        self.cost = cost
        self.pool = pool
        self._run_cpu = run_cpu or env.timeout
        self.busy_s = 0.0
        self.passes = 0
        self.connections = 0  # N: open or connecting
        self.idle = 0  # I
        self.opened = 0  # connections created so far
        self._seq = 0
        self._idle_heap: list[tuple[int, int, _Conn]] = []  # (seq, token, conn)
        self._expiry: list[tuple[float, int, int, _Conn]] = []  # (idle since, seq, token)
        self._ahead: dict[int, list[tuple[str, PoolRequest]]] = {}
        self._arrived: list[PoolRequest] = []
        self._it = 0  # the iteration running, or the next one when idle
        self._running = False
        self._wake: simpy.Event | None = None
        env.process(self._main())

    # -- inputs from the simulation ------------------------------------------------------

    def request(self, prompt_tokens: int) -> PoolRequest:
        """A request the workflow emits now; it enters the pool `request_hops` iterations
        on (the next one, with one hop)."""
        req = PoolRequest(self.env, prompt_tokens)
        hops = self.pool.request_hops - (0 if self._running else 1)
        self._ahead.setdefault(self._it + hops, []).append(("enter", req))
        self._poke()
        return req

    def answer(self, req: PoolRequest, output_tokens: int) -> simpy.Event:
        """`req`'s answer arrives now; the returned event fires once the program has
        handled it (the workflow sees it then)."""
        if req.conn is None or req.conn.state != ACTIVE:
            raise SimError("ClientLoop.answer: the request never started")
        req.arrived_t = self.env.now
        req.hop_s = self.cost.response_s(output_tokens) / self.pool.answer_hops
        req.seen = self.env.event()
        self._arrived.append(req)
        self._poke()
        return req.seen

    def _poke(self) -> None:
        if self._wake is not None and not self._wake.triggered:
            self._wake.succeed()

    # -- the loop --------------------------------------------------------------------------

    def _main(self) -> Generator[simpy.Event, Any, None]:
        while True:
            if not self._ahead and not self._arrived:
                self._wake = self.env.event()
                yield self._wake
                self._wake = None
            self._running = True
            for req in self._arrived:  # read now, handled by the task next iteration
                self._later(1, "answer", req)
            self._arrived.clear()
            for kind, req in self._ahead.pop(self._it, []):
                work, done = self._step(kind, req)
                if work > 0:
                    self.busy_s += work
                    yield self._run_cpu(work)
                if done is not None:
                    done.succeed()
            self._running = False
            self._it += 1

    def _later(self, hops: int, kind: str, req: PoolRequest) -> None:
        self._ahead.setdefault(self._it + hops, []).append((kind, req))

    def _step(self, kind: str, req: PoolRequest) -> tuple[float, simpy.Event | None]:
        """Run one step of `req`: its CPU seconds, and the event that fires once they are
        spent (the request has started; the answer is handled), if any."""
        if kind == "enter":
            work = self.cost.request_s(req.prompt_tokens) + self._pass()
            self._assign(req)
            return work, None
        conn = req.conn
        assert conn is not None
        if kind == "request_locked":  # leave the request lock, take the state lock
            self._release(conn.request_lock)
            self._acquire(conn.state_lock, req, "check")
            return 0.0, None
        if kind == "check":
            ok = conn.state == IDLE or (conn.state == NEW and req.owns_new)
            if ok:
                if conn.state == IDLE:
                    self.idle -= 1
                conn.state = ACTIVE
            self._release(conn.state_lock)
            if ok:
                return 0.0, req.sent
            work = self._pass()  # ConnectionNotAvailable: clear, pass, assign again
            req.owns_new = False
            self._assign(req)
            return work, None
        if kind == "answer":  # one hop of the answer's handling
            pool = self.pool
            req.hop += 1
            work = req.hop_s
            if req.hop == pool.release_hop:  # the response closed: its connection idles
                conn.state = IDLE
                conn.token += 1
                self.idle += 1
                heapq.heappush(self._idle_heap, (conn.seq, conn.token, conn))
                heapq.heappush(self._expiry, (req.arrived_t, conn.seq, conn.token, conn))
                work += self._pass()
            if req.hop < pool.answer_hops:
                self._later(1, "answer", req)
                return work, None
            return work, req.seen
        raise AssertionError(kind)

    # -- the pool --------------------------------------------------------------------------

    def _pass(self) -> float:
        """One assignment pass at now: drop expired connections, return its CPU."""
        limit = self.env.now - self.pool.keepalive_s
        expiry = self._expiry
        while expiry:
            since, _, token, conn = expiry[0]
            live = conn.state == IDLE and conn.token == token
            if live and since >= limit:
                break
            heapq.heappop(expiry)
            if live:
                conn.state = CLOSED
                self.connections -= 1
                self.idle -= 1
        self.passes += 1
        n, i = self.connections, self.idle
        p = self.pool
        return p.pass_s + p.conn_s * n + p.idle_s * i + p.pair_s * n * i

    def _first_idle(self) -> _Conn | None:
        heap = self._idle_heap
        while heap:
            _, token, conn = heap[0]
            if conn.state == IDLE and conn.token == token:
                return conn
            heapq.heappop(heap)
        return None

    def _assign(self, req: PoolRequest) -> None:
        conn = self._first_idle()
        if conn is not None:
            req.conn = conn
            self._acquire(conn.request_lock, req, "request_locked")
            return
        conn = _Conn(self._seq)
        self._seq += 1
        self.connections += 1
        self.opened += 1
        req.conn, req.owns_new = conn, True
        conn.request_lock.owner = req  # held while connecting; the connect is read next
        self._later(2, "request_locked", req)  # iteration, the task resumes the one after

    def _acquire(self, lock: _Lock, req: PoolRequest, then: str) -> None:
        if lock.owner is None and not lock.waiters:
            lock.owner = req
            self._later(1, then, req)  # anyio yields once, the lock held
        else:
            lock.waiters.append((req, then))

    def _release(self, lock: _Lock) -> None:
        if lock.waiters:
            req, then = lock.waiters.popleft()
            lock.owner = req
            self._later(1, then, req)
        else:
            lock.owner = None
