"""Atomic file writes: results and caches are never left half-written.

A file is written through a temporary file in the same folder, fsync'ed and renamed over
the target, so a reader (or a crash) sees the old file or the new one, never a mix. The new
file gets the mode the old one had, or, for a new file, the ordinary mode of a created file
(0666 less the process umask: 0644 under the usual umask 022), not the 0600 of a bare
temporary file, so results and shared caches stay readable by the group.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Any

from helium_lab.errors import ConfigError


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # elsewhere: read by setting (briefly) and restoring
    os.umask(mask)
    return mask


def _new_file_mode(target: Path) -> int:
    try:
        return stat.S_IMODE(target.stat().st_mode)  # replacing: keep the old file's mode
    except OSError:
        return 0o666 & ~current_umask()


def _fsync_dir(folder: Path) -> None:
    """Make a rename in `folder` durable (best effort: not every OS or file system can)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write `text` to `path` through a temp file in the same folder and a rename."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    mode = _new_file_mode(target)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(target.parent)
    return target


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def check_writable_file(path: str | Path, key: str) -> Path:
    """Refuse (ConfigError naming `key`) a file path that `atomic_write_text` could not
    write: a path that is a folder or another non-file, under something that is not a
    folder, or in a folder where this process cannot create files. Checked by creating and
    removing a temporary file in the nearest existing folder (permission bits alone do not
    tell, e.g. for root or on a read-only mount); creates nothing that stays."""
    p = Path(path)  # as PromptCache opens it (no ~ expansion)
    if p.exists() and not p.is_file():
        kind = "a folder" if p.is_dir() else "not a regular file"
        raise ConfigError(f"{key}={str(path)!r} is {kind}; it must name a file (the store "
                          "is written there)")
    folder = p.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise ConfigError(f"{key}={str(path)!r}: {folder} is not a folder, so the file "
                          "cannot be created")
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=f".{p.name}.", suffix=".probe")
    except OSError as e:
        raise ConfigError(f"{key}={str(path)!r}: cannot write in {folder} "
                          f"({e.strerror or e}); choose a writable location") from None
    os.close(fd)
    Path(probe).unlink(missing_ok=True)
    return p
