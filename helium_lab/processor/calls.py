"""The call-level seam between the planner and the backends (DESIGN.md).

The query processor emits `LLMCall`s; a backend's engines run them and report a
`CallResult` each. Nothing here knows about time sources or engines.
"""

from __future__ import annotations

import hashlib
from array import array
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from helium_lab.dsl.ops import SamplingParams
from helium_lab.tokenizer import SyntheticTokenizer, Tokenizer


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
    same `n` in `release` when it is admitted. `prompt_key` (optional) is
    `prompt_key(prompt_ids)`, computed once by the processor for whoever needs it.
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
    prompt_key: bytes = field(default=b"", compare=False, repr=False)

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
_WORD_ARRAY = np.array(_WORDS, dtype=object)  # the same, for gathers in C


def prompt_key(prompt_ids: tuple[int, ...]) -> bytes:
    """A prompt's token ids as bytes (int64 each): the key of everything derived from it."""
    return array("q", prompt_ids).tobytes()


def output_seed(key: bytes) -> bytes:
    """The seed of the synthetic output for the prompt whose `prompt_key` is `key`."""
    return hashlib.blake2b(key, digest_size=16).digest()


def synthetic_words(seed: bytes, n_tokens: int) -> np.ndarray[Any, np.dtype[np.uint32]]:
    """Indices into the synthetic vocabulary of the `n_tokens` words seeded by `seed`:
    word k is little-endian uint32 k of the stream blake2b(seed || block) mod 50,000."""
    stream = b"".join(hashlib.blake2b(seed + b.to_bytes(4, "little"), digest_size=64).digest()
                      for b in range(-(-n_tokens // 16)))
    words: np.ndarray[Any, np.dtype[np.uint32]] = np.frombuffer(
        stream, dtype="<u4", count=n_tokens) % np.uint32(len(_WORDS))
    return words


def _join_words(words: np.ndarray[Any, np.dtype[np.uint32]]) -> str:
    return " ".join(_WORD_ARRAY[words].tolist())


def synthetic_output(prompt_ids: tuple[int, ...], n_tokens: int) -> str:
    """Deterministic stand-in for a greedy model: the answer depends only on the prompt.

    Used by the echo engine and the simulator; identical prompts give identical answers,
    different prompts (almost surely) different ones, so caching semantics stay exact.
    """
    if n_tokens < 1:
        return ""
    return _join_words(synthetic_words(output_seed(prompt_key(prompt_ids)), n_tokens))


def synthetic_completion(call: LLMCall, tokenizer: Tokenizer) -> tuple[str, tuple[int, ...]]:
    """`synthetic_output` of `call` and its token ids under `tokenizer`, at most
    `call.output_tokens` of them (the text is cut to match when the tokenizer makes more).

    Uses the prompt key the processor stored on the call, and with the synthetic tokenizer
    maps word indices straight to ids (equal to encoding the text, one id per word).
    """
    if call.output_tokens < 1:
        return "", ()
    seed = output_seed(call.prompt_key or prompt_key(call.prompt_ids))
    words = synthetic_words(seed, call.output_tokens)
    text = _join_words(words)
    if isinstance(tokenizer, SyntheticTokenizer):
        ids = tuple(tokenizer.word_ids(_WORDS)[words].tolist())
        tokenizer.remember(text, ids)  # later prompts quote the text: no re-encoding
    else:
        ids = tuple(tokenizer.encode(text))
        if len(ids) > call.output_tokens:
            ids = ids[:call.output_tokens]
            text = tokenizer.decode(ids)
    return text, ids
