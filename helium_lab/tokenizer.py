"""Tokenizers the planner and the simulator share.

`SyntheticTokenizer` is the deterministic stand-in used without a real model: one token per
whitespace-separated word, the id a stable hash of the word. Token identity is what prefix
caching is about, so equal text always maps to equal ids, and the token count of a text is
simply its word count (which is how the workload generators size their texts).
"""

from __future__ import annotations

import functools
import hashlib
import zlib
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np


class Tokenizer(Protocol):
    """Text <-> token ids. Implementations must be deterministic."""

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...


_STR_ONLY_SPACE = "\x1c\x1d\x1e\x1f"  # ASCII whitespace to str.split, not bytes.split


class SyntheticTokenizer:
    """Word-level hashing tokenizer (vocabulary `vocab_size`, ids >= 16 are words)."""

    def __init__(self, vocab_size: int = 151_000, cache_size: int = 65_536) -> None:
        self.vocab_size = vocab_size
        self._cache: dict[str, tuple[int, ...]] = {}  # text -> ids, oldest first
        self._cache_size = cache_size
        self._word_tables: dict[int, tuple[tuple[str, ...], np.ndarray[Any, Any]]] = {}

    def _encode(self, text: str) -> tuple[int, ...]:
        n = self.vocab_size - 16
        if text.isascii() and not any(c in text for c in _STR_ONLY_SPACE):
            # bytes.split() splits exactly where str.split() does: faster, same words
            return tuple(16 + c % n for c in map(zlib.crc32, text.encode().split()))
        return tuple(16 + zlib.crc32(w.encode()) % n for w in text.split())

    def _encode_cached(self, text: str) -> tuple[int, ...]:
        ids = self._cache.get(text)
        if ids is None:
            ids = self._encode(text)
            self.remember(text, ids)
        return ids

    def remember(self, text: str, ids: tuple[int, ...]) -> None:
        """Cache `ids` as the encoding of `text` (the caller vouches that they are: the
        synthetic outputs know their ids, and later prompts quote them verbatim)."""
        cache = self._cache
        if len(cache) >= self._cache_size:
            del cache[next(iter(cache))]
        cache[text] = ids

    def encode(self, text: str) -> list[int]:
        return list(self._encode_cached(text))

    def count(self, text: str) -> int:
        return len(self._encode_cached(text))

    def decode(self, ids: Sequence[int]) -> str:
        return " ".join(f"t{i}" for i in ids)

    def word_ids(self, words: tuple[str, ...]) -> np.ndarray[Any, np.dtype[np.int64]]:
        """Ids of single (whitespace-free) words, as an array indexed like `words`;
        memoised per tuple, for the synthetic outputs' fixed vocabulary."""
        table = self._word_tables.get(id(words))
        if table is None or table[0] is not words:
            ids = np.fromiter((self._encode(w)[0] for w in words), dtype=np.int64,
                              count=len(words))
            table = self._word_tables[id(words)] = (words, ids)
        return table[1]


def token_count(tokenizer: Tokenizer, text: str) -> int:
    """Tokens in `text`, without building the id list when the tokenizer can count."""
    count = getattr(tokenizer, "count", None)
    return int(count(text)) if count is not None else len(tokenizer.encode(text))


def synthetic_text(seed: bytes | str, n_tokens: int, prefix: str = "w") -> str:
    """`n_tokens` pseudo-random words derived only from `seed` (same seed, same text).

    Word k is `prefix` + (little-endian uint32 k of the concatenated digests
    blake2b-512(seed + block index) mod 50,000), 16 words per digest."""
    if isinstance(seed, str):
        seed = seed.encode()
    if n_tokens <= 0:
        return ""
    digests = b"".join(hashlib.blake2b(seed + block.to_bytes(4, "little"), digest_size=64)
                       .digest() for block in range(-(-n_tokens // 16)))
    picks = np.frombuffer(digests, dtype="<u4", count=n_tokens) % _VOCAB
    table = _word_table(prefix)
    return " ".join([table[i] for i in picks.tolist()])


_VOCAB = 50_000


@functools.cache
def _word_table(prefix: str) -> tuple[str, ...]:
    return tuple(f"{prefix}{i}" for i in range(_VOCAB))
