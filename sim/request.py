"""One request's state inside a simulated engine (vLLM's `Request`, reduced to what matters).

Token accounting follows vLLM v1: `num_tokens` is the prompt plus the output tokens sampled
so far; `num_computed_tokens` is how many of them have KV in the cache. A step schedules
`num_tokens - num_computed_tokens` tokens (capped by the budget); when the computed count
reaches `num_tokens` a new token is sampled. The last output token is sampled but never
computed, so a finished request holds KV for `prompt + output - 1` tokens::

    prompt p0..p4, output o0..o2        num_tokens grows 5 -> 6 -> 7 -> 8 (finished)
    step 1: compute p0..p4, sample o0   step 2: compute o0, sample o1
    step 3: compute o1, sample o2 (max_tokens reached: finished, o2 never computed)
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from helium_lab.processor.calls import LLMCall


class Status(enum.Enum):
    WAITING = "waiting"
    RUNNING = "running"
    PREEMPTED = "preempted"
    FINISHED = "finished"


@dataclass(eq=False)
class SimRequest:
    """A request: its planned output is known up front (synthetic or replayed ids).

    `request_id` is the engine's arrival sequence number (FIFO tiebreak everywhere).
    `call` is None for prewarm and replay requests.
    """

    request_id: int
    prompt_ids: tuple[int, ...]
    output_ids: tuple[int, ...]
    priority: int = 0
    call: LLMCall | None = None
    output_text: str = ""
    submit_t: float = 0.0
    status: Status = Status.WAITING
    num_computed_tokens: int = 0
    num_output: int = 0
    num_preemptions: int = 0
    cached_tokens: int | None = None
    start_t: float | None = None
    first_token_t: float | None = None
    finish_t: float | None = None
    max_tokens: int = field(init=False)
    """Output tokens to generate: `len(output_ids)`."""
    num_tokens: int = field(init=False)
    """Prompt plus output tokens sampled so far (kept in step with `num_output` by
    `sample`; a plain attribute because the scheduler reads it millions of times)."""
    kv_slots: int = 0
    """Tokens the request's KV blocks have room for (kept by the KV manager)."""
    kv_cache_next: int = 0
    """Computed-token count at which its next block fills and gets cached (kept by the KV
    manager): a step computing up to fewer tokens, within `kv_slots`, needs nothing from
    the KV manager (the scheduler's fast check)."""
    block_hashes: list[bytes] | None = None
    """Hashes of every full block of prompt + planned output (the KV manager fills them
    in once; the output is known up front, so no re-hashing as tokens are sampled)."""

    def __post_init__(self) -> None:
        if not self.prompt_ids:
            raise ValueError(f"request {self.request_id}: empty prompt")
        if not self.output_ids:
            raise ValueError(f"request {self.request_id}: max_tokens must be >= 1")
        self.max_tokens = len(self.output_ids)
        self.num_tokens = len(self.prompt_ids) + self.num_output

    def sample(self, n: int = 1) -> None:
        """Record `n` more sampled output tokens."""
        self.num_output += n
        self.num_tokens += n

    @property
    def num_prompt_tokens(self) -> int:
        return len(self.prompt_ids)

    @property
    def finished(self) -> bool:
        return self.num_output >= self.max_tokens

    @property
    def name(self) -> str:
        """How error messages and logs refer to this request."""
        if self.call is not None:
            return f"call {self.call.call_id} (op {self.call.op!r}, query {self.call.query})"
        return f"request {self.request_id}"
