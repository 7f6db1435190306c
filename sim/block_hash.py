"""Hashes of full KV blocks that identify their whole prefix, as vLLM v1's chained hashes do.

vLLM hashes block i as H(hash of block i-1, token ids of block i), so two blocks share a
hash exactly when the sequences agree up to the end of those blocks. Only FULL blocks get a
hash::

    tokens  | t0 .. t15 | t16 .. t31 | t32 .. t40 (partial: not hashed)
    hashes  |    h0     |     h1     |

Any function of the prefix with (practically) no collisions gives the same cache
behaviour, so here the hash of block i is a 128-bit fingerprint of tokens[:(i+1)*B],
computed for all blocks of a sequence at once with numpy instead of block by block in
Python (the hashing was a fifth of the simulator's time):

    lane_k(prefix of n tokens) = sum_{t<n} mix(token_t) * P_k**(t+1)   (mod 2**64)

with `mix` the splitmix64 finaliser (a pseudo-random 64-bit value per token id) and P_1,
P_2 odd constants: two evaluations of the same polynomial at different points. A block's
hash is the 16 bytes of both lanes. Two distinct prefixes collide in a lane with
probability about 2**-64 (at most 2**-44 for adversarially structured differences), so
both lanes together are far below one collision in 10**20 lookups.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

BlockHashT = bytes
"""A block hash: 16 opaque bytes (two 64-bit lanes)."""

_SEED = 0x243F6A8885A308D3
_BASES = (0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F)
_U64 = np.uint64
_Array = np.ndarray[Any, Any]


def _splitmix64(x: _Array) -> _Array:
    with np.errstate(over="ignore"):
        z = x + _U64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> _U64(30))) * _U64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> _U64(27))) * _U64(0x94D049BB133111EB)
        return z ^ (z >> _U64(31))


class _Tables:
    """Per-token mixes and positional powers of both lanes, grown on demand."""

    def __init__(self) -> None:
        self.mix: _Array = np.empty(0, dtype=np.uint64)
        self.pow: tuple[_Array, ...] = ()
        self.grow(1 << 18, 1 << 16)

    def grow(self, vocab: int, length: int) -> None:
        if vocab > len(self.mix):
            self.mix = _splitmix64(np.arange(vocab, dtype=np.uint64) ^ np.uint64(_SEED))
        if length > (len(self.pow[0]) if self.pow else 0):
            with np.errstate(over="ignore"):
                self.pow = tuple(np.cumprod(np.full(length, b, dtype=np.uint64))
                                 for b in _BASES)


_TABLES = _Tables()


def as_token_array(tokens: Sequence[int] | np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Token ids as a non-negative integer numpy array (no copy when already one)."""
    if isinstance(tokens, np.ndarray):
        arr = tokens
    elif isinstance(tokens, (tuple, list)):
        arr = np.fromiter(tokens, dtype=np.int64, count=len(tokens))
    else:
        arr = np.asarray(tokens)
    if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
        raise ValueError(f"token ids must be a flat sequence of integers, got {arr.dtype}")
    if arr.size and int(arr.min()) < 0:
        raise ValueError("token ids must be non-negative")
    return arr


class BlockHasher:
    """Computes the prefix hashes of the full blocks of token sequences."""

    def __init__(self, block_size: int) -> None:
        if block_size <= 0:
            raise ValueError(f"block_size must be positive, got {block_size}")
        self.block_size = block_size

    def hashes(self, tokens: Sequence[int] | np.ndarray[Any, Any]) -> list[BlockHashT]:
        """Hashes of all full blocks of `tokens` (a sequence or array of token ids)."""
        arr = as_token_array(tokens)
        bs = self.block_size
        n = len(arr) // bs * bs
        if n == 0:
            return []
        arr = arr[:n]
        top = int(arr.max()) + 1
        if top > len(_TABLES.mix) or n > len(_TABLES.pow[0]):
            _TABLES.grow(max(top, 2 * len(_TABLES.mix)), max(n, 2 * len(_TABLES.pow[0])))
        mixed = _TABLES.mix[arr]
        out = np.empty((n // bs, 2), dtype=np.uint64)
        with np.errstate(over="ignore"):
            for lane in (0, 1):
                # every bs-th running sum of the whole product: the same as summing blocks
                # first (additions mod 2**64 associate), and faster than a 16-wide reduce
                out[:, lane] = np.cumsum(mixed * _TABLES.pow[lane][:n])[bs - 1::bs]
        hashes: list[BlockHashT] = out.view("V16").ravel().tolist()
        return hashes
