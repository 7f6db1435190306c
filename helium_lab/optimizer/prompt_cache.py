"""The global prompt cache: deterministic op signature -> full result (PAPER.md §5.2).

Signatures hash the op kind, its parameters and its *resolved* input values (for an LLM
op: the rendered chat messages and every field of its sampling parameters), plus a
*namespace* for LLM ops: the output identity of the run, i.e. everything else that decides
what a call returns (backend and engine, model name, path and weights, output caps, the
batch's output profiles; `output_namespace`, built per run by
`experiments.workflow_run.prompt_cache_namespace`), so a hit can only return what the same
computation produced (docs/reliability.md). Entries live in a bounded LRU and persist to a
JSON store written atomically (temp file + rename) and merged under a file lock with what
other runs saved meanwhile, so a later batch (the paper's day-2
run) reuses an earlier one's results. An unreadable store is reported with a warning naming
the file and the cache starts cold; a store is never left half-written.
"""

from __future__ import annotations

import dataclasses
import fcntl
import functools
import hashlib
import inspect
import json
import marshal
import os
import warnings
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from helium_lab.dsl.ops import LambdaOp, OutputProfile, SamplingParams
from helium_lab.io import atomic_write_text

# 2: LLM keys hold the run's output identity (not only the model name) and every sampling
# field; a version-1 store is reported and replaced by a cold cache.
STORE_VERSION = 2
SMALL_FILE_BYTES = 1 << 20  # model-folder files up to this size are fingerprinted by content


def _digest(payload: object) -> str:
    blob = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def llm_signature(namespace: str, messages: Sequence[tuple[str, str]],
                  sampling: SamplingParams, profile: OutputProfile | None = None) -> str:
    """Key of a greedy LLM call: output namespace, rendered messages, sampling parameters
    (every field of `SamplingParams`, by name, so a field added later is keyed too) and
    the op's output profile with the rule that turns it into a length (`OutputProfile`'s
    code): every backend generates exactly `profile.length_for(prompt, max_tokens)` tokens
    (real engines pin it with `ignore_eos`), so the profile decides an output as much as
    the prompt does.

    Fields are length-prefixed before hashing, so no two distinct inputs share a byte
    stream (and no JSON escaping of long prompts is needed).
    """
    h = hashlib.sha256(b"llm\x00")
    sp = "|".join(f"{f.name}={getattr(sampling, f.name)!r}"
                  for f in dataclasses.fields(sampling))
    prof = ("" if profile is None else
            f"{float(profile.mean)!r}|{profile.lo}|{profile.hi}|{_length_rule()}")
    for field in (namespace, sp, prof, *(x for m in messages for x in m)):
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


# -- output identity: the namespace of LLM signatures ---------------------------------------
def output_namespace(**identity: Any) -> str:
    """The namespace of a run's LLM signatures: `identity` (JSON values: everything besides
    a call's messages and sampling parameters that decides its output) as canonical JSON.
    Equal identities give equal namespaces, on any machine and in any process."""
    return json.dumps(identity, ensure_ascii=False, separators=(",", ":"), sort_keys=True,
                      allow_nan=False)


@functools.cache
def _length_rule() -> str:
    return source_digest(OutputProfile)


def source_digest(*objects: object) -> str:
    """SHA-256 of the source of `objects` (modules, classes, functions): code that decides
    outputs (the synthetic generator, the length rule, an engine's request settings) keys
    the cache, so editing it invalidates what was written before. Without source files (a
    frozen install) an object counts by its qualified name and the installed helium_lab
    version."""
    h = hashlib.sha256()
    for obj in objects:
        try:
            text = inspect.getsource(obj)  # type: ignore[arg-type]
        except (OSError, TypeError):
            name = getattr(obj, "__qualname__", getattr(obj, "__name__", repr(obj)))
            text = f"{getattr(obj, '__module__', '')}.{name}@{package_versions('helium_lab')}"
        data = text.encode()
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()


def package_versions(*names: str) -> dict[str, str | None]:
    """Installed versions of the named distributions (None: not installed)."""
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def weights_fingerprint(path: str | Path) -> str:
    """A cheap fingerprint of a local model folder (config, tokenizer and weights).

    Every regular file directly in `path` (what vLLM and the tokenizer load; links followed,
    dot-files and subfolders skipped) contributes its name and: its bytes when at most
    1 MiB (config.json, generation_config.json, tokenizer_config.json, the safetensors
    index), else its size and modification time in ns (weight shards, a large
    tokenizer.json), so nothing large is read. A missing folder fingerprints as "missing".
    """
    root = Path(path)
    if not root.is_dir():
        return "missing"
    h = hashlib.sha256(b"model-folder\x00")
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        if entry.name.startswith("."):
            continue
        try:
            if not entry.is_file():  # follows links; a folder or dangling link: skipped
                continue
            st = entry.stat()
            if st.st_size <= SMALL_FILE_BYTES:
                desc = "bytes:" + hashlib.sha256(Path(entry.path).read_bytes()).hexdigest()
            else:
                desc = f"stat:{st.st_size}:{st.st_mtime_ns}"
        except OSError as e:  # unreadable: keyed as such (a later readable file differs)
            desc = f"error:{type(e).__name__}"
        for data in (os.fsencode(entry.name), desc.encode()):
            h.update(len(data).to_bytes(8, "little"))
            h.update(data)
    return h.hexdigest()


class PromptCache:
    """Bounded LRU map of signatures to results, optionally backed by a JSON store."""

    def __init__(self, capacity: int = 100_000, path: str | Path | None = None) -> None:
        if capacity <= 0:
            raise ValueError(f"prompt cache capacity must be positive, got {capacity}")
        self.capacity = capacity
        self.path = Path(path) if path is not None else None
        self._entries: OrderedDict[str, str] = OrderedDict()
        self._dropped: set[str] = set()  # conflicting keys: not merged back from the store
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

    def update(self, pairs: Iterable[tuple[str, str]]) -> int:
        """`put` one batch's results in order, except keys that the batch produced with two
        different values (ops whose calls share messages and sampling but not their output
        profile, which the per-call signature cannot tell apart): those are not cached, and
        an entry already held for them is dropped. Returns how many keys were dropped."""
        pairs = list(pairs)
        first: dict[str, str] = {}
        conflicts = {k for k, v in pairs if first.setdefault(k, v) != v}
        for k, v in pairs:
            if k not in conflicts:
                self.put(k, v)
        for k in conflicts:
            self._entries.pop(k, None)
        self._dropped |= conflicts
        return len(conflicts)

    def clear(self) -> None:
        self._entries.clear()

    # -- persistence -------------------------------------------------------------------
    @staticmethod
    def _read_store(path: Path) -> list[list[str]]:
        """The entries of the store at `path` ([] if there is none); ValueError or OSError
        if it is unreadable."""
        if not path.exists():
            return []
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, dict) or data.get("version") != STORE_VERSION:
                raise ValueError(f"expected a version-{STORE_VERSION} store object")
            entries = data["entries"]
            if not all(isinstance(e, list) and len(e) == 2 and all(isinstance(x, str) for x in e)
                       for e in entries):
                raise ValueError("entries must be [key, value] string pairs")
        except (KeyError, TypeError, UnicodeDecodeError) as e:
            raise ValueError(str(e)) from None
        return list(entries)

    def _load(self, path: Path) -> None:
        try:
            entries = self._read_store(path)
        except (OSError, ValueError) as e:
            warnings.warn(f"prompt-cache store {path} is unreadable ({e}); starting with a cold "
                          "cache (it is kept as a backup when this run saves)", stacklevel=2)
            return
        for k, v in entries[-self.capacity:]:
            self._entries[k] = v

    def save(self, path: str | Path | None = None) -> Path:
        """Merge this cache into the store and write it atomically; returns its path.

        Under an exclusive lock (`<store>.lock`, `fcntl.flock`), the store is read again, so
        entries another run saved since this one loaded are kept (as older than this run's;
        this run's value wins on a shared key, which equal keys make equal anyway); the
        result keeps the `capacity` most recent entries. A store that is unreadable then is
        not overwritten but first renamed to `<store>.corrupt` (`.corrupt.1`, ... if taken),
        with a warning naming the backup."""
        target = Path(path) if path is not None else self.path
        if target is None:
            raise ValueError("PromptCache.save: no store path configured")
        target.parent.mkdir(parents=True, exist_ok=True)
        lock_path = target.with_name(target.name + ".lock")
        with open(lock_path, "a", encoding="utf-8") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                merged = self._merged_with(target)
                payload = {"version": STORE_VERSION, "entries": [[k, v] for k, v in merged]}
                atomic_write_text(target, json.dumps(payload, ensure_ascii=False))
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
        return target

    def _merged_with(self, target: Path) -> list[tuple[str, str]]:
        try:
            on_disk = self._read_store(target)
        except (OSError, ValueError) as e:
            backup = target.with_name(target.name + ".corrupt")
            n = 0
            while backup.exists():
                n += 1
                backup = target.with_name(f"{target.name}.corrupt.{n}")
            os.replace(target, backup)
            warnings.warn(f"prompt-cache store {target} was unreadable ({e}); moved to {backup} "
                          "before writing a new one", stacklevel=3)
            on_disk = []
        merged: OrderedDict[str, str] = OrderedDict(
            (k, v) for k, v in on_disk if k not in self._entries and k not in self._dropped)
        merged.update(self._entries)
        return list(merged.items())[-self.capacity:]
