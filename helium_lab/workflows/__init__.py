"""The paper's workloads as DSL programs with seeded workload generators.

Each builder takes ``batch_size``, ``seed`` and its own keyword parameters (with the paper's
defaults) and returns the workflow graph compiled over a batch (a `BoundGraph` whose `meta`
records workflow, batch size, seed and parameters). Same seed, same bindings.

    bound = make_workload("trading", batch_size=16, branches=8, day="2024-06-01")

=================  ================================================  =========================
name               parameters (defaults)                             LLM ops per query
=================  ================================================  =========================
mapred_mmlu        experts=14, roles=7, dataset_path                 experts + 1
mapred_tatqa       experts=7, questions=6, dataset_path              questions*(experts + 1)
debate             agents=3, rounds=2, dataset_path                  agents*rounds
debate_tatqa       agents=3, rounds=2, questions=6, dataset_path     questions*agents*rounds
reflect            critics=2, questions=6, dataset_path              questions*(critics + 2)
iterative          chunks=6, reviews_per_chunk=10, dataset_path      chunks
parallel           experts=7, chunks=6, reviews_per_chunk=10, ...    experts*(chunks + 1) + 1
trading            branches=8, rounds=2, day="2024-06-02"            20 + 2R + B(3R + 2)
synthetic_mapred   config="P1", experts=4                            experts + 1
synthetic_debate   config="P1", agents=3, rounds=2                   agents*rounds
=================  ================================================  =========================
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

from helium_lab.dsl import BoundGraph
from helium_lab.errors import ConfigError
from helium_lab.workflows.base import check_int
from helium_lab.workflows.debate import debate, debate_tatqa
from helium_lab.workflows.iterative import iterative
from helium_lab.workflows.mapred import mapred_mmlu, mapred_tatqa
from helium_lab.workflows.parallel import parallel
from helium_lab.workflows.reflect import reflect
from helium_lab.workflows.synthetic import synthetic_debate, synthetic_mapred
from helium_lab.workflows.trading import trading

WORKFLOWS: dict[str, Callable[..., BoundGraph]] = {
    "mapred_mmlu": mapred_mmlu,
    "mapred_tatqa": mapred_tatqa,
    "debate": debate,
    "debate_tatqa": debate_tatqa,
    "reflect": reflect,
    "iterative": iterative,
    "parallel": parallel,
    "trading": trading,
    "synthetic_mapred": synthetic_mapred,
    "synthetic_debate": synthetic_debate,
}


def workflow_params(name: str) -> dict[str, object]:
    """The parameters of workflow `name` other than batch_size and seed, with defaults."""
    builder = _builder(name)
    return {p.name: p.default for p in inspect.signature(builder).parameters.values()
            if p.name not in ("batch_size", "seed")}


def _builder(name: str) -> Callable[..., BoundGraph]:
    builder = WORKFLOWS.get(name)
    if builder is None:
        raise ConfigError(f"unknown workflow {name!r}; known workflows: {sorted(WORKFLOWS)}")
    return builder


def make_workload(name: str, *, batch_size: int, seed: int = 0, **params: object) -> BoundGraph:
    """Build workflow `name` over `batch_size` queries. Unknown names, unknown parameters and
    invalid values raise ConfigError naming them."""
    builder = _builder(name)
    check_int(name, "seed", seed, lo=0)
    accepted = workflow_params(name)
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ConfigError(f"workflow {name!r}: unknown parameter(s) {unknown}; "
                          f"accepted: {sorted(accepted)}")
    return builder(batch_size=batch_size, seed=seed, **params)


__all__ = ["WORKFLOWS", "make_workload", "workflow_params"]
