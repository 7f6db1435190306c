"""The call-level seam between the planner and the backends (DESIGN.md).

The query processor emits `LLMCall`s; a backend's engines run them and report a
`CallResult` each. Nothing here knows about time sources or engines.
"""

from __future__ import annotations

import hashlib
import sys
from array import array
from dataclasses import dataclass

from helium_lab.dsl.ops import SamplingParams


@dataclass(frozen=True)
class LLMCall:
    """One LLM request: a rendered prompt for one (op, query) on one worker.

    `pieces` gives the prompt's segment structure as (end offset, is_static) pairs over
    `prompt_ids`; `output_tokens` is the length to generate (engines pin it, e.g. vLLM with
    `ignore_eos` and `max_tokens`); `priority` is the schedule rank (lower runs earlier);
    `signature` is the prompt-cache key when the call is cacheable. `retain` and
    `release` are proactive-KV hints (engines may ignore them): soft-pin the KV of the
    first `n` prompt tokens for each `n` in `retain` until a later call of the same query,
    on the same worker, whose prompt starts with those tokens releases one pin with the
    same `n` in `release` when it is admitted.
    """

    call_id: int
    query: int
    op: str
    worker: int
    prompt_ids: tuple[int, ...]
    pieces: tuple[tuple[int, bool], ...]
    output_tokens: int
    sampling: SamplingParams
    priority: int = 0
    signature: str | None = None
    messages: tuple[tuple[str, str], ...] = ()
    retain: tuple[int, ...] = ()
    release: tuple[int, ...] = ()

    @property
    def prompt_tokens(self) -> int:
        return len(self.prompt_ids)


@dataclass(frozen=True)
class CallResult:
    """What an engine reports when a call finishes (times in the backend's clock, seconds)."""

    call_id: int
    output_text: str
    output_ids: tuple[int, ...]
    submit_t: float
    start_t: float
    first_token_t: float
    finish_t: float
    cached_tokens: int


@dataclass(frozen=True)
class CallRecord:
    """One line of a run's per-call records."""

    call_id: int
    query: int
    op: str
    worker: int
    submit_t: float
    start_t: float
    first_token_t: float
    finish_t: float
    prompt_tokens: int
    cached_tokens: int
    output_tokens: int

    @staticmethod
    def of(call: LLMCall, result: CallResult) -> CallRecord:
        """The record of `call`, finished as `result` reports."""
        return CallRecord(call.call_id, call.query, call.op, call.worker, result.submit_t,
                          result.start_t, result.first_token_t, result.finish_t,
                          call.prompt_tokens, result.cached_tokens, len(result.output_ids))


_WORDS = tuple(f"o{i}" for i in range(50_000))  # the synthetic output vocabulary


def prompt_key(prompt_ids: tuple[int, ...]) -> bytes:
    """A prompt's token ids as bytes (int64 each): the key of everything derived from it."""
    return array("q", prompt_ids).tobytes()


def synthetic_output(prompt_ids: tuple[int, ...], n_tokens: int) -> str:
    """Deterministic stand-in for a greedy model: the answer depends only on the prompt.

    Used by the echo engine and the simulator; identical prompts give identical answers,
    different prompts (almost surely) different ones, so caching semantics stay exact.
    """
    if n_tokens < 1:
        return ""
    seed = hashlib.blake2b(prompt_key(prompt_ids), digest_size=16).digest()
    # word k = little-endian uint32 k of the stream blake2b(seed || block) mod 50,000
    stream = b"".join(hashlib.blake2b(seed + b.to_bytes(4, "little"), digest_size=64).digest()
                      for b in range(-(-n_tokens // 16)))
    picks = array("I", stream[:4 * n_tokens])
    if sys.byteorder != "little":
        picks.byteswap()
    words = _WORDS
    return " ".join([words[x % 50_000] for x in picks])
