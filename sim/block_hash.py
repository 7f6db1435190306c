"""Chained hashes of full KV blocks, as vLLM v1's prefix cache computes them.

Block i of a sequence is identified by (identity of block i-1, token ids of block i), so
equal ids mean equal prefixes, never merely equal blocks::

    tokens  | t0 .. t15 | t16 .. t31 | t32 .. t40 (partial: not hashed)
    hashes  |    h0     |  h1 = H(h0, t16..t31)

vLLM hashes the pair with sha256; here every distinct pair is interned to a small integer,
which is exact (no collisions) and deterministic within a run. Only FULL blocks get a hash.
Token ids are packed as int32 (`pack`) so a block's key is a bytes slice, cheap to hash.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence

_ITEM = array("i").itemsize


def pack(tokens: Sequence[int]) -> bytes:
    """Token ids as packed native int32 (ids must be < 2**31)."""
    return array("i", tokens).tobytes()

NONE_HASH = -1
"""Parent id of the first block of every sequence."""


class BlockHasher:
    """Interns (parent id, block tokens) pairs into dense integer block hashes."""

    def __init__(self, block_size: int) -> None:
        if block_size <= 0:
            raise ValueError(f"block_size must be positive, got {block_size}")
        self.block_size = block_size
        self._ids: dict[tuple[int, bytes], int] = {}

    def __len__(self) -> int:
        return len(self._ids)

    def extend(self, hashes: list[int], tokens: Sequence[int] | bytes,
               num_tokens: int) -> list[int]:
        """Append to `hashes` the hashes of the full blocks of `tokens[:num_tokens]` it lacks.

        `tokens` is a sequence of ids or their `pack`ed bytes. `hashes` must be the hashes of
        a prefix of the same token sequence (vLLM keeps them on the request and extends them
        as tokens are appended). Returns `hashes`.
        """
        data = tokens if isinstance(tokens, bytes) else pack(tokens)
        step = self.block_size * _ITEM
        n_full = min(num_tokens, len(data) // _ITEM) // self.block_size
        start = len(hashes)
        if start >= n_full:
            return hashes
        parent = hashes[-1] if hashes else NONE_HASH
        ids = self._ids
        get = ids.get
        append = hashes.append
        for lo in range(start * step, n_full * step, step):
            key = (parent, data[lo:lo + step])
            h = get(key)
            if h is None:
                h = ids[key] = len(ids)
            append(h)
            parent = h
        return hashes

    def hashes(self, tokens: Sequence[int] | bytes) -> list[int]:
        """Hashes of all full blocks of `tokens`."""
        return self.extend([], tokens, 1 << 62)

    def known_hashes(self, tokens: Sequence[int] | bytes) -> list[int]:
        """Hashes of the leading full blocks of `tokens` already interned (no new entries).

        A block never hashed before cannot be cached, so lookups can stop there.
        """
        data = tokens if isinstance(tokens, bytes) else pack(tokens)
        step = self.block_size * _ITEM
        out: list[int] = []
        parent = NONE_HASH
        for i in range(len(data) // step):
            h = self._ids.get((parent, data[i * step:(i + 1) * step]))
            if h is None:
                break
            out.append(h)
            parent = h
        return out
