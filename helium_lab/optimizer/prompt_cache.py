"""The global prompt cache: deterministic op signature -> full result (PAPER.md §5.2).

Signatures hash the op kind, its parameters and its *resolved* input values (for an LLM
op: the rendered chat messages and sampling parameters), plus a namespace naming the model,
so a hit can only return what the same computation produced. Entries live in a bounded LRU
and persist to a JSON store written atomically (temp file + rename), so a later batch (the
paper's day-2 run) reuses an earlier one's results. An unreadable store is reported with a
warning naming the file and the cache starts cold; a store is never left half-written.
"""

from __future__ import annotations

import hashlib
import json
import marshal
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

from helium_lab.dsl.ops import LambdaOp, SamplingParams
from helium_lab.io import atomic_write_text

STORE_VERSION = 1


def _digest(payload: object) -> str:
    blob = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def llm_signature(namespace: str, messages: Sequence[tuple[str, str]],
                  sampling: SamplingParams) -> str:
    """Key of a greedy LLM call: model namespace, rendered messages, sampling parameters.

    Fields are length-prefixed before hashing, so no two distinct inputs share a byte
    stream (and no JSON escaping of long prompts is needed).
    """
    h = hashlib.sha256(b"llm\x00")
    sp = f"{sampling.temperature!r}|{sampling.max_tokens}|{sampling.top_p!r}|{sampling.seed!r}"
    for field in (namespace, sp, *(x for m in messages for x in m)):
        data = field.encode()
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    h.update(len(messages).to_bytes(8, "little"))
    return h.hexdigest()


def lambda_signature(op: LambdaOp, args: Sequence[str]) -> str:
    """Key of a deterministic lambda: its code, closure and defaults, and its argument values."""
    fn = op.fn
    code = getattr(fn, "__code__", None)
    ident = hashlib.sha256(marshal.dumps(code)).hexdigest() if code is not None else repr(fn)
    cells = [repr(c.cell_contents) for c in (getattr(fn, "__closure__", None) or ())]
    return _digest(["lambda", op.fn_name, ident, cells, repr(getattr(fn, "__defaults__", None)),
                    list(args)])


class PromptCache:
    """Bounded LRU map of signatures to results, optionally backed by a JSON store."""

    def __init__(self, capacity: int = 100_000, path: str | Path | None = None) -> None:
        if capacity <= 0:
            raise ValueError(f"prompt cache capacity must be positive, got {capacity}")
        self.capacity = capacity
        self.path = Path(path) if path is not None else None
        self._entries: OrderedDict[str, str] = OrderedDict()
        self.hits = 0
        self.misses = 0
        if self.path is not None:
            self._load(self.path)

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> str | None:
        value = self._entries.get(key)
        if value is None:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return value

    def put(self, key: str, value: str) -> None:
        self._entries[key] = value
        self._entries.move_to_end(key)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()

    # -- persistence -------------------------------------------------------------------
    def _load(self, path: Path) -> None:
        if not path.exists():
            return
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, dict) or data.get("version") != STORE_VERSION:
                raise ValueError(f"expected a version-{STORE_VERSION} store object")
            entries = data["entries"]
            if not all(isinstance(e, list) and len(e) == 2 and all(isinstance(x, str) for x in e)
                       for e in entries):
                raise ValueError("entries must be [key, value] string pairs")
        except (OSError, ValueError, KeyError, TypeError) as e:
            warnings.warn(f"prompt-cache store {path} is unreadable ({e}); starting with a cold "
                          "cache", stacklevel=2)
            return
        for k, v in entries[-self.capacity:]:
            self._entries[k] = v

    def save(self, path: str | Path | None = None) -> Path:
        """Write the store atomically (LRU order, oldest first); returns its path."""
        target = Path(path) if path is not None else self.path
        if target is None:
            raise ValueError("PromptCache.save: no store path configured")
        payload = {"version": STORE_VERSION, "entries": [[k, v] for k, v in self._entries.items()]}
        atomic_write_text(target, json.dumps(payload, ensure_ascii=False))
        return target
