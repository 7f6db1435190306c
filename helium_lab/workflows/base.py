"""Shared pieces of the workload builders: sampling, output profiles, checks, compiling.

Every LLM op of the paper's workloads samples greedily with at most 512 new tokens
(PAPER.md §11); its `OutputProfile` is sized from the reference's token statistics (§12.3).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from helium_lab.dsl import BoundGraph, Msg, Op, OutputProfile, SamplingParams, Workflow
from helium_lab.errors import ConfigError

# a chat message as `Workflow.llm` takes it: a Msg, or (role, text/op or a list of them)
Message = Msg | tuple[str, str | Op | Sequence[str | Op]]

MAX_TOKENS = 512
SAMPLING = SamplingParams(temperature=0.0, max_tokens=MAX_TOKENS)


def profile(mean: float, spread: float, cap: int = MAX_TOKENS) -> OutputProfile:
    """Output lengths uniform in a band around `mean` (narrowed so it stays under `cap`)."""
    hi = min(cap, round(mean + spread))
    lo = max(1, round(2 * mean - hi))
    return OutputProfile(mean=mean, lo=lo, hi=hi)


def pinned(n_tokens: int) -> tuple[OutputProfile, SamplingParams]:
    """A profile and sampling that make every output exactly `n_tokens` long."""
    return (OutputProfile(mean=n_tokens, lo=n_tokens, hi=n_tokens),
            SamplingParams(temperature=0.0, max_tokens=n_tokens))


def check_int(workflow: str, name: str, value: object, lo: int = 1, hi: int | None = None) -> int:
    """`value` as an int in [lo, hi], or a ConfigError naming the workflow and parameter."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"workflow {workflow!r}: parameter {name!r} must be an int, "
                          f"got {value!r}")
    if value < lo or (hi is not None and value > hi):
        bound = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise ConfigError(f"workflow {workflow!r}: parameter {name!r} must be {bound}, "
                          f"got {value}")
    return value


def check_choice(workflow: str, name: str, value: object, choices: Sequence[str]) -> str:
    if value not in choices:
        raise ConfigError(f"workflow {workflow!r}: parameter {name!r} must be one of "
                          f"{list(choices)}, got {value!r}")
    return str(value)


def names(base: Sequence[str], n: int, generic: str) -> list[str]:
    """`n` distinct names: those of `base` first, then `generic` numbered."""
    return [base[i] if i < len(base) else f"{generic} {i + 1}" for i in range(n)]


def slug(name: str) -> str:
    """`name` usable in an op id (no spaces)."""
    return name.replace(" ", "_")


def finish(wf: Workflow, bindings: Mapping[str, Sequence[str]], *, batch_size: int, seed: int,
           params: Mapping[str, object]) -> BoundGraph:
    """Compile `wf` over `bindings`; `meta` records how the workload was made."""
    bound: BoundGraph = wf.build().compile(**bindings)
    meta = {"workflow": wf.name, "batch_size": batch_size, "seed": seed, "params": dict(params)}
    return dataclasses.replace(bound, meta=meta)


def labelled(items: Sequence[tuple[str, Op]]) -> list[str | Op]:
    """Message parts listing ops' outputs, each on its own lines after a label."""
    parts: list[str | Op] = []
    for label, op in items:
        parts += [f"\n{label}:\n", op, "\n"]
    return parts
