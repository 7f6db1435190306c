"""vLLM's own output into a log file, so the console keeps progress, errors and the summary.

A vLLM engine start prints dozens of lines per engine (logger warnings about kernels
re-registered, NUMA binding, LD_PRELOAD advice; C++ and `warnings` lines on stderr). With
a log path, `EngineLog` sends them to that file:

* the `vllm` logger writes to the file for the whole session (ERROR and above also still
  reach the console), instead of its own stdout handler and the root logger;
* while engines start and stop (`quiet()`), the process's stdout and stderr file
  descriptors point at the file too, which catches what bypasses Python logging.

Without a path (`EngineLog(None)`) everything stays as vLLM does it.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOGGER = "vllm"


class EngineLog:
    """See the module docstring. `open()` once, `close()` once (idempotent)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._handlers: list[logging.Handler] = []
        self._saved: tuple[list[logging.Handler], bool] | None = None

    def open(self) -> None:
        if self.path is None or self._saved is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        logger = logging.getLogger(LOGGER)
        self._saved = (list(logger.handlers), logger.propagate)
        to_file = logging.FileHandler(self.path, encoding="utf-8")
        to_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        to_console = logging.StreamHandler(sys.stderr)
        to_console.setLevel(logging.ERROR)
        self._handlers = [to_file, to_console]
        logger.handlers = list(self._handlers)
        logger.propagate = False

    def close(self) -> None:
        if self._saved is None:
            return
        logger = logging.getLogger(LOGGER)
        logger.handlers, logger.propagate = self._saved
        for h in self._handlers:
            h.close()
        self._saved, self._handlers = None, []

    @contextmanager
    def quiet(self) -> Iterator[None]:
        """Point file descriptors 1 and 2 at the log while the block runs (engine start
        and shutdown); restored even if the block raises."""
        if self.path is None:
            yield
            return
        sys.stdout.flush()
        sys.stderr.flush()
        with open(self.path, "ab") as log:
            saved = os.dup(1), os.dup(2)
            try:
                os.dup2(log.fileno(), 1)
                os.dup2(log.fileno(), 2)
                yield
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os.dup2(saved[0], 1)
                os.dup2(saved[1], 2)
                os.close(saved[0])
                os.close(saved[1])
