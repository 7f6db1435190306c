"""The client process of a system that reaches its engines over HTTP, as a serial CPU.

A baseline's client program (LangGraph's `abatch`, an asyncio OpenAI client, ...) runs in
one Python process: building each request (framework bookkeeping, message conversion,
JSON encoding) and handling each response (JSON decoding, state updates) takes CPU time in
that one thread, so when thousands of calls become ready at once they leave one after
another, and completions wait their turn before the workflow sees them.

`ClientCPU` is that thread, first come first served: a request costs
`call_s / 2 + prompt_token_s * prompt tokens` before it leaves, a response
`call_s / 2 + output_token_s * output tokens` before the processor learns of it. The
constants are measured (docs/client_overhead.md); all zero (an in-process engine, Helium)
means no client stage at all. Pure arithmetic on the simulated clock: deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass

from sim.errors import SimError


@dataclass(frozen=True)
class ClientCost:
    """Per-call CPU of the client process, in seconds (per token for the size terms)."""

    call_s: float = 0.0
    prompt_token_s: float = 0.0
    output_token_s: float = 0.0

    def __post_init__(self) -> None:
        for key in ("call_s", "prompt_token_s", "output_token_s"):
            if getattr(self, key) < 0:
                raise SimError(f"client cost {key} must be >= 0, got {getattr(self, key)}")

    @property
    def active(self) -> bool:
        return self.call_s > 0 or self.prompt_token_s > 0 or self.output_token_s > 0

    def request_s(self, prompt_tokens: int) -> float:
        return self.call_s / 2 + self.prompt_token_s * prompt_tokens

    def response_s(self, output_tokens: int) -> float:
        return self.call_s / 2 + self.output_token_s * output_tokens


class ClientCPU:
    """One client thread: work items run in arrival order, each for its cost."""

    def __init__(self, cost: ClientCost) -> None:
        self.cost = cost
        self.free_at = 0.0

    def run(self, now: float, work_s: float) -> float:
        """Queue `work_s` of CPU arriving at `now`; returns when it is done."""
        start = max(now, self.free_at)
        self.free_at = start + work_s
        return self.free_at
