"""vLLM backend: real engines behind `helium_lab.backend.Session`, the tiny test model,
and the calibration profiler for the simulator's `FittedStepCost`.

    from runtime import open_session
    with open_session(ModelSettings("tiny"), EngineSettings(block_size=32), 1,
                      orchestration=Orchestration()) as session:
        result = session.run(proc)

Importing this package does not import vLLM or torch; `open_session` does (in-process
engines, see `runtime.session`). Command-line tools: `python -m runtime.tiny_model OUT`,
`python -m runtime.calibrate --model tiny --out PATH`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from helium_lab.config import EngineSettings, ModelSettings, Orchestration
from runtime.errors import (
    EngineDiedError,
    EngineStartError,
    ModelPathError,
    RuntimeBackendError,
    VllmMissingError,
)

if TYPE_CHECKING:
    from runtime.session import VllmSession


def open_session(model: ModelSettings, engine: EngineSettings, num_workers: int, *,
                 orchestration: Orchestration | None = None, seed: int = 0,
                 max_output_tokens: int | None = None,
                 log_path: Path | None = None) -> VllmSession:
    """Start `num_workers` vLLM engines serving `model` (a context manager; `close()`).

    `max_output_tokens` caps every call's output length (see
    `helium_lab.processor.capping`); None generates exactly `call.output_tokens` tokens.
    `log_path`: where vLLM's own output goes (`runtime.engine_log`); None leaves it on the
    console."""
    from runtime.session import VllmSession

    return VllmSession(model, engine, num_workers, orchestration=orchestration, seed=seed,
                       max_output_tokens=max_output_tokens, log_path=log_path)


__all__ = ["EngineDiedError", "EngineStartError", "ModelPathError", "RuntimeBackendError",
           "VllmMissingError", "open_session"]
