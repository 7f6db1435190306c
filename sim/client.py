"""The client process of a system that reaches its engines over HTTP, and the engines'
OpenAI API server process, each as a serial CPU.

A baseline's client program (LangGraph's `abatch`, an asyncio OpenAI client, ...) runs in
one Python process: building each request (framework bookkeeping, message conversion,
JSON encoding) and handling each response (JSON decoding, state updates) takes CPU time in
that one thread, so when thousands of calls become ready at once they leave one after
another, and completions wait their turn before the workflow sees them.

`ClientCPU` is that thread, first come first served: a request costs
`call_s / 2 + prompt_token_s * prompt tokens` before it leaves, a response
`call_s / 2 + output_token_s * output tokens` before the processor learns of it. The
constants are measured (docs/client_overhead.md); all zero (an in-process engine, Helium)
means no client stage at all.

Optionally (`pool_passes` > 0; off by default) the client also pays httpcore 1.0.9's
connection-pool pass: every request arrival and every response close runs one pass over
the pool, costing `c0 + c_conn N + c_idle I + c_pair N I` microseconds for N open
connections of which I are idle (`POOL_PASS_US`, measured: conf/orchestration/
client_overhead.json "pool_fit", docs/client_overhead.md part 2). A request reuses an idle
connection or opens one; a closed response leaves its connection idle for `keepalive_s`
(httpx's default `keepalive_expiry`, 5 s, which the reference programs keep). Pool state
changes when the thread gets to the event, not when the event arrives: a response waiting
behind a backlog is closed (and its connection starts its keep-alive) only when the
thread reaches it, as in the real program, where the pool learns of a response only when
the task reading it runs. (Reading the pool at arrival times instead made every response
of a backlog idle at once: 235 s predicted against 29-38 s measured for 1,000 held
calls, docs/client_overhead.md part 4.) `pool_passes` scales the passes per event (bursts measured
4-5.6 passes per call, ~2.5 per event).

`ServerCost` is the same for the API server in front of the engines (vLLM's OpenAI server:
HTTP parsing, chat template, tokenization, request bookkeeping, in one Python process): a
request costs `call_s + prompt_token_s * prompt tokens` of that process's CPU before its
engine sees it (measured, docs/server_overhead.md). `scope` says how many such processes
there are: `shared` (helium_demo's vLLM runner: one API server holding every worker's
engine) or `per_worker` (one server per engine: SGLang behind its router).

Pure arithmetic on the simulated clock: deterministic.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from sim.errors import SimError

# httpcore 1.0.9 pool pass, µs = c0 + c_conn N + c_idle I + c_pair N I (client_overhead.json)
POOL_PASS_US = (3.6367, 0.24156, 14.82862, 0.3198141)


def pool_pass_s(connections: int, idle: int) -> float:
    """CPU seconds of one httpcore pool pass over `connections`, `idle` of them idle."""
    c0, c_conn, c_idle, c_pair = POOL_PASS_US
    return (c0 + c_conn * connections + c_idle * idle + c_pair * connections * idle) * 1e-6


@dataclass(frozen=True)
class ClientCost:
    """Per-call CPU of the client process, in seconds (per token for the size terms)."""

    call_s: float = 0.0
    prompt_token_s: float = 0.0
    output_token_s: float = 0.0
    pool_passes: float = 0.0
    keepalive_s: float = 5.0

    def __post_init__(self) -> None:
        for key in ("call_s", "prompt_token_s", "output_token_s", "pool_passes",
                    "keepalive_s"):
            if getattr(self, key) < 0:
                raise SimError(f"client cost {key} must be >= 0, got {getattr(self, key)}")

    @property
    def active(self) -> bool:
        return (self.call_s > 0 or self.prompt_token_s > 0 or self.output_token_s > 0
                or self.pool_passes > 0)

    def request_s(self, prompt_tokens: int) -> float:
        return self.call_s / 2 + self.prompt_token_s * prompt_tokens

    def response_s(self, output_tokens: int) -> float:
        return self.call_s / 2 + self.output_token_s * output_tokens


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

    def run(self, now: float, work_s: float) -> float:
        """Queue `work_s` of CPU arriving at `now`; returns when it is done."""
        start = max(now, self.free_at)
        self.free_at = start + work_s
        return self.free_at


class ClientCPU(SerialCPU):
    """The client program's thread, with its per-call costs and its connection pool."""

    def __init__(self, cost: ClientCost) -> None:
        super().__init__()
        self.cost = cost
        self.busy = 0  # connections carrying a request
        self.idle: deque[float] = deque()  # idle connections' expiry times, oldest first

    def pool_at(self, now: float) -> tuple[int, int]:
        """The pool at `now` (not before the last event the thread reached): open
        connections and idle ones, after closing the idle connections expired by then."""
        while self.idle and self.idle[0] <= now:
            self.idle.popleft()
        return self.busy + len(self.idle), len(self.idle)

    def _pass_s(self, now: float) -> float:
        """The pool passes' CPU at `now` (`pool_at`)."""
        return self.cost.pool_passes * pool_pass_s(*self.pool_at(now))

    def request(self, now: float, prompt_tokens: int) -> float:
        """A request built at `now`: when it leaves the client."""
        work = self.cost.request_s(prompt_tokens)
        if self.cost.pool_passes:  # the pool is tracked only when it is charged
            work += self._pass_s(max(now, self.free_at))
            if self.idle:
                self.idle.pop()  # reuse the most recently idled connection
            self.busy += 1
        return self.run(now, work)

    def response(self, now: float, output_tokens: int) -> float:
        """A response arriving at `now`: when the workflow sees it."""
        work = self.cost.response_s(output_tokens)
        if self.cost.pool_passes:
            start = max(now, self.free_at)  # the response is closed when the thread gets to it
            self.busy -= 1
            self.idle.append(start + self.cost.keepalive_s)
            work += self._pass_s(start)
        return self.run(now, work)
