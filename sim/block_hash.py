"""Chained hashes of full KV blocks, as vLLM v1's prefix cache computes them.

Block i of a sequence is identified by (identity of block i-1, token ids of block i), so
equal ids mean equal prefixes, never merely equal blocks::

    tokens  | t0 .. t15 | t16 .. t31 | t32 .. t40 (partial: not hashed)
    hashes  |    h0     |  h1 = H(h0, t16..t31)

vLLM hashes the pair with sha256; here every distinct pair is interned to a small integer,
which is exact (no collisions) and deterministic within a run. Only FULL blocks get a hash.
"""

from __future__ import annotations

from collections.abc import Sequence

NONE_HASH = -1
"""Parent id of the first block of every sequence."""


class BlockHasher:
    """Interns (parent id, block tokens) pairs into dense integer block hashes."""

    def __init__(self, block_size: int) -> None:
        if block_size <= 0:
            raise ValueError(f"block_size must be positive, got {block_size}")
        self.block_size = block_size
        self._ids: dict[tuple[int, tuple[int, ...]], int] = {}

    def __len__(self) -> int:
        return len(self._ids)

    def extend(self, hashes: list[int], tokens: Sequence[int], num_tokens: int) -> list[int]:
        """Append to `hashes` the hashes of the full blocks of `tokens[:num_tokens]` it lacks.

        `hashes` must be the hashes of a prefix of the same token sequence (vLLM keeps them on
        the request and extends them as tokens are appended). Returns `hashes`.
        """
        bs = self.block_size
        n_full = min(num_tokens, len(tokens)) // bs
        parent = hashes[-1] if hashes else NONE_HASH
        for i in range(len(hashes), n_full):
            key = (parent, tuple(tokens[i * bs:(i + 1) * bs]))
            parent = self._ids.setdefault(key, len(self._ids))
            hashes.append(parent)
        return hashes

    def hashes(self, tokens: Sequence[int]) -> list[int]:
        """Hashes of all full blocks of `tokens`."""
        return self.extend([], tokens, len(tokens))

    def known_hashes(self, tokens: Sequence[int]) -> list[int]:
        """Hashes of the leading full blocks of `tokens` already interned (no new entries).

        A block never hashed before cannot be cached, so lookups can stop there.
        """
        bs = self.block_size
        out: list[int] = []
        parent = NONE_HASH
        for i in range(len(tokens) // bs):
            h = self._ids.get((parent, tuple(tokens[i * bs:(i + 1) * bs])))
            if h is None:
                break
            out.append(h)
            parent = h
        return out
