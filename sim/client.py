"""The client process of a system that reaches its engines over HTTP, and the engines'
OpenAI API server process, each as a serial CPU.

A baseline's client program (LangGraph's `abatch`, an asyncio OpenAI client, ...) runs in
one Python process: building each request (framework bookkeeping, message conversion,
JSON encoding) and handling each response (JSON decoding, state updates) takes CPU time in
that one thread, so when thousands of calls become ready at once they leave one after
another, and completions wait their turn before the workflow sees them.

`ClientCPU` is that thread, first come first served: a request costs
`call_s / 2 + prompt_token_s * prompt tokens` before it leaves, a response the rest of the
call's fixed part (below) plus `output_token_s * output tokens` before the processor learns
of it. The constants are measured (docs/client_overhead.md); all zero (an in-process
engine, Helium) means no client stage at all.

The fixed part may grow with the calls in flight (`concurrency`, empty by default):
points (calls in flight, s per call); the fixed part at n calls in flight is linear
between (1, `call_s`) and the points and flat beyond the last. n counts the calls in
flight when the event arrives at the client: requests it was given, less responses it was
given, the event itself included. The growth is charged to the response: a request costs
`call_s / 2` at any concurrency, because the real programs' sends do not get dearer with
calls in flight (`scripts/client_programs.py --split`: LangGraph spent 3.3-3.7 ms per
request building its first burst, OpWise 1.5-2.7 ms, against 12.5-18.2 ms per call over
the whole run; docs/client_overhead.md, "where a call's CPU goes"). The validation's
run-input simulations use it (a measured flat cost per call); the systems' HTTP clients
used curves fitted to held runs until the event loop below replaced them
(docs/client_overhead.md part 4).

With a `pool` (`PoolCost`), the client is not this FIFO thread but its event loop and
connection pool step by step (`sim/client_loop.py`, what the systems' HTTP clients use):
the cost of a call then follows the pool's connections and idle ones, and `concurrency`
must stay empty.

`ServerCost` is the same for the API server in front of the engines (vLLM's OpenAI server:
HTTP parsing, chat template, tokenization, request bookkeeping, in one Python process): a
request costs `call_s + prompt_token_s * prompt tokens` of that process's CPU before its
engine sees it (measured, docs/server_overhead.md). `scope` says how many such processes
there are: `shared` (helium_demo's vLLM runner: one API server holding every worker's
engine) or `per_worker` (one server per engine: SGLang behind its router).

Pure arithmetic on the simulated clock: deterministic.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field

from sim.errors import SimError


@dataclass(frozen=True)
class PoolCost:
    """httpcore's connection pool as `sim/client_loop.py` runs it: an assignment pass
    costs `pass_s + conn_s * N + idle_s * I + pair_s * N * I` seconds of client CPU with N
    connections open, I of them idle; a connection expires `keepalive_s` after its answer
    arrived. The program's own path in loop iterations: an answer is handled over
    `answer_hops` iterations from the one that read it (its CPU spread evenly over them),
    its connection freed at hop `release_hop`, the workflow told at the last; a request the
    workflow emits enters the pool `request_hops` iterations later (sim/client_loop.py)."""

    keepalive_s: float = 5.0
    pass_s: float = 0.0
    conn_s: float = 0.0
    idle_s: float = 0.0
    pair_s: float = 0.0
    answer_hops: int = 1
    release_hop: int = 1
    request_hops: int = 1

    def __post_init__(self) -> None:
        for key in ("keepalive_s", "pass_s", "conn_s", "idle_s", "pair_s"):
            if getattr(self, key) < 0:
                raise SimError(f"client pool {key} must be >= 0, got {getattr(self, key)}")
        for key in ("answer_hops", "release_hop", "request_hops"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise SimError(f"client loop {key} must be an iteration count >= 1, got {v!r}")
        if self.release_hop > self.answer_hops:
            raise SimError(f"client loop release_hop ({self.release_hop}) must be <= "
                           f"answer_hops ({self.answer_hops}): the connection is freed "
                           f"while the answer is handled")


@dataclass(frozen=True)
class ClientCost:
    """Per-call CPU of the client process, in seconds (per token for the size terms)."""

    call_s: float = 0.0
    prompt_token_s: float = 0.0
    output_token_s: float = 0.0
    concurrency: tuple[tuple[float, float], ...] = ()  # (calls in flight, s per call)
    pool: PoolCost | None = None  # the event loop and pool model (module docstring)
    _points: tuple[tuple[float, float], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for key in ("call_s", "prompt_token_s", "output_token_s"):
            if getattr(self, key) < 0:
                raise SimError(f"client cost {key} must be >= 0, got {getattr(self, key)}")
        last = 1.0
        for n, cost in self.concurrency:
            if n <= last or cost < self.call_s / 2:
                raise SimError(f"client cost concurrency: points must be (calls in flight, "
                               f"s per call) with calls in flight increasing above 1 and "
                               f"costs >= call_s / 2 = {self.call_s / 2} (the send side); "
                               f"got ({n}, {cost}) after {last}")
            last = n
        if self.pool is not None and self.concurrency:
            raise SimError("client cost: a concurrency curve and a pool model are two ways "
                           "of charging the same CPU; give one")
        object.__setattr__(self, "_points", ((1.0, self.call_s), *self.concurrency))

    @property
    def active(self) -> bool:
        return (self.call_s > 0 or self.prompt_token_s > 0 or self.output_token_s > 0
                or any(cost > 0 for _, cost in self.concurrency))

    def call_at(self, in_flight: int) -> float:
        """The fixed CPU per call with `in_flight` calls in flight (module docstring)."""
        points = self._points
        i = bisect_right(points, (float(in_flight), float("inf")))
        if i == 0:
            return self.call_s
        if i == len(points):
            return points[-1][1]
        (n0, c0), (n1, c1) = points[i - 1], points[i]
        return c0 + (c1 - c0) * (in_flight - n0) / (n1 - n0)

    def request_s(self, prompt_tokens: int) -> float:
        """Building and sending a request: half the one-call fixed part at any
        concurrency (module docstring)."""
        return self.call_s / 2 + self.prompt_token_s * prompt_tokens

    def response_s(self, output_tokens: int, in_flight: int = 1) -> float:
        """Handling a response: the rest of the fixed part at `in_flight` calls."""
        return self.call_at(in_flight) - self.call_s / 2 + self.output_token_s * output_tokens


SERVER_SCOPES = ("shared", "per_worker")


@dataclass(frozen=True)
class ServerCost:
    """Per-request CPU of the API server process before the engine, in seconds."""

    call_s: float = 0.0
    prompt_token_s: float = 0.0
    scope: str = "shared"

    def __post_init__(self) -> None:
        for key in ("call_s", "prompt_token_s"):
            if getattr(self, key) < 0:
                raise SimError(f"server cost {key} must be >= 0, got {getattr(self, key)}")
        if self.scope not in SERVER_SCOPES:
            raise SimError(f"server cost scope {self.scope!r}: choose one of "
                           f"{', '.join(SERVER_SCOPES)}")

    @property
    def active(self) -> bool:
        return self.call_s > 0 or self.prompt_token_s > 0

    def request_s(self, prompt_tokens: int) -> float:
        return self.call_s + self.prompt_token_s * prompt_tokens


class SerialCPU:
    """One thread: work items run in arrival order (callers submit in that order)."""

    def __init__(self) -> None:
        self.free_at = 0.0
        self.busy_s = 0.0  # CPU seconds of all work queued so far

    def run(self, now: float, work_s: float) -> float:
        """Queue `work_s` of CPU arriving at `now`; returns when it is done."""
        start = max(now, self.free_at)
        self.free_at = start + work_s
        self.busy_s += work_s
        return self.free_at


class ClientCPU(SerialCPU):
    """The client program's thread, with its per-call costs and its calls in flight."""

    def __init__(self, cost: ClientCost) -> None:
        super().__init__()
        self.cost = cost
        self.in_flight = 0  # requests given to the client, less responses given to it

    def request_work(self, prompt_tokens: int) -> float:
        """The CPU seconds of building a request given to the client now."""
        self.in_flight += 1
        return self.cost.request_s(prompt_tokens)

    def response_work(self, output_tokens: int) -> float:
        """The CPU seconds of handling a response given to the client now."""
        work = self.cost.response_s(output_tokens, self.in_flight)
        self.in_flight -= 1
        return work

    def request(self, now: float, prompt_tokens: int) -> float:
        """A request built at `now`: when it leaves the client (a core of its own)."""
        return self.run(now, self.request_work(prompt_tokens))

    def response(self, now: float, output_tokens: int) -> float:
        """A response arriving at `now`: when the workflow sees it (a core of its own)."""
        return self.run(now, self.response_work(output_tokens))
