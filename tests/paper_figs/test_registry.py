"""The artifact registry: complete, shared runs once, Hydra-safe keys, bad names refused."""

from __future__ import annotations

import re

import pytest

from experiments.paper import (
    ARTIFACT_NAMES,
    PROFILES,
    UnknownArtifactError,
    all_runs,
    build_artifacts,
    resolve_names,
    trading_run,
)
from experiments.paper_numbers import PAPER
from helium_lab.errors import ConfigError
from paper_figs.artifacts import DRAWERS


@pytest.mark.parametrize("profile", PROFILES)
def test_every_artifact_has_runs_and_a_drawer(profile: str) -> None:
    arts = build_artifacts(profile)
    assert tuple(arts) == ARTIFACT_NAMES
    assert set(DRAWERS) == set(ARTIFACT_NAMES)
    for name, a in arts.items():
        if a.external:
            assert not a.points, name  # read from elsewhere, never launched
        else:
            assert a.points and a.runs, name
    runs = all_runs(arts.values())  # raises on a key collision
    for key, run in runs.items():
        assert re.fullmatch(r"[A-Za-z0-9_-]+", key), key
        assert run.overrides[0].startswith("+experiment="), run


def test_shared_default_point_is_one_run() -> None:
    arts = build_artifacts("quick")
    default = trading_run("helium").key
    users = [n for n, a in arts.items() if default in {r.key for r in a.runs}]
    assert {"fig7", "fig8", "fig9", "table3"} <= set(users)
    lg = trading_run("langgraph").key
    assert {"fig7", "fig8", "fig9", "fig12", "table7"} <= {
        n for n, a in arts.items() if lg in {r.key for r in a.runs}}
    # explicit defaults give the same run as omitted ones
    assert trading_run("helium", model="qwen3-8b", batch=16, branches=8).key == default


def test_paper_profile_has_paper_sizes_and_no_reductions() -> None:
    arts = build_artifacts("paper")
    assert all(not a.reductions for a in arts.values())
    batches = {p.labels["batch"] for p in arts["fig7"].points}
    assert batches == {8, 16, 32, 64, 80}
    quick = build_artifacts("quick")
    assert any(a.reductions for a in quick.values())


def test_paper_numbers_cover_compared_systems() -> None:
    assert set(PAPER["table2"]) == {"vllm", "opwise", "langgraph", "agentscope", "parrot",
                                    "kvflow"}


def test_resolve_names() -> None:
    assert resolve_names([]) == list(ARTIFACT_NAMES)
    assert resolve_names(["all"]) == list(ARTIFACT_NAMES)
    assert resolve_names(["table3", "FIG7"]) == ["fig7", "table3"]
    with pytest.raises(UnknownArtifactError, match=r"unknown artifact.*fig99.*known: fig5"):
        resolve_names(["fig7", "fig99"])
    with pytest.raises(ConfigError, match="unknown profile"):
        build_artifacts("huge")
