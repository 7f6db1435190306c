"""Which full-block prompt prefixes one real engine has seen, for its `lspf` queue order.

vLLM's own scheduler does not order its waiting queue by cached prefix; `runtime.engine`
keeps this index of every prompt submitted or prewarmed and gives longer known prefixes a
better priority (longest shared prefix first, SGLang's LSPF).
"""

from __future__ import annotations


class PrefixIndex:
    """Full-block prefixes seen by one engine, as chained hashes (for `lspf`)."""

    def __init__(self, block_size: int) -> None:
        self.block_size = block_size
        self.known: set[int] = set()

    def _chain(self, ids: tuple[int, ...]) -> list[int]:
        bs, h, out = self.block_size, 0, []
        for k in range(len(ids) // bs):
            h = hash((h, ids[k * bs:(k + 1) * bs]))
            out.append(h)
        return out

    def longest(self, ids: tuple[int, ...]) -> int:
        n = 0
        for h in self._chain(ids):
            if h not in self.known:
                break
            n += 1
        return n * self.block_size

    def add(self, ids: tuple[int, ...]) -> None:
        self.known.update(self._chain(ids))
