"""The client programs' parts without servers (runtime/programs). They need the `programs`
extra (LangGraph, langchain-openai, httpx): skipped without it, unless
HELIUM_REQUIRE_VLLM=1 (scripts/test.sh installs everything) makes that a failure."""

from __future__ import annotations

import importlib.util
import os

_MISSING = [m for m in ("langgraph", "langchain_openai", "httpx")
            if importlib.util.find_spec(m) is None]
if _MISSING:
    if os.environ.get("HELIUM_REQUIRE_VLLM") == "1":
        raise RuntimeError(f"HELIUM_REQUIRE_VLLM=1 but {_MISSING} are not installed "
                           "(scripts/test.sh installs the `programs` extra)")
    collect_ignore_glob = ["test_*.py"]
