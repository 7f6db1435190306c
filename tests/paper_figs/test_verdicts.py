"""Verdict rules of REPORT.md: effects, overshoots and claims that hold by a hair."""

from __future__ import annotations

from paper_figs.common import Section, effect_text, verdict_effect


def test_effect_within_half_of_the_papers_is_reproduced() -> None:
    assert verdict_effect("x", 1.30, 1.25).startswith("REPRODUCED")  # 120% of the effect
    assert verdict_effect("x", 1.15, 1.25).startswith("REPRODUCED")  # 60%


def test_a_weak_effect_is_partial_and_no_effect_is_not_reproduced() -> None:
    assert verdict_effect("x", 1.10, 1.25).startswith("PARTIAL")  # 40%
    assert verdict_effect("x", 1.05, 1.25).startswith("NOT REPRODUCED")  # 20%
    assert verdict_effect("x", 0.95, 1.25).startswith("NOT REPRODUCED")  # the other way


def test_an_overshoot_beyond_one_and_a_half_times_is_not_a_reproduction() -> None:
    v = verdict_effect("AgentScope avg latency/Helium", 7.33, 2.10)
    assert v.startswith("NOT REPRODUCED") and "overshoots" in v
    assert verdict_effect("x", 1.37, 1.25).startswith("REPRODUCED")  # 148%: still within
    assert verdict_effect("x", 1.39, 1.25).startswith("NOT REPRODUCED")  # 156%


def test_effect_text_shows_both_effects_and_the_share() -> None:
    assert effect_text(1.10, 1.25) == "+0.10 / +0.25 (40%)"
    assert effect_text(None, 1.25) == "n/a"


def test_ratio_rows_add_an_effect_column() -> None:
    s = Section("t", "title")
    s.row("plain", 3.0, 4.0)
    s.ratio_row("ratio", 1.1, 1.25)
    md = s.markdown()
    assert "effect: ours / paper" in md and "+0.10 / +0.25 (40%)" in md


def test_latency_adds_the_planners_wall_time_only_when_asked() -> None:
    import pytest

    from paper_figs.common import latency

    s = {"makespan_s": 100.0, "planning_s": 0.25}
    assert latency(s) == 100.0  # default: the simulated clock only (machine-independent)
    assert latency(s, "measured") == 100.25
    with pytest.raises(ValueError, match="planning_time"):
        latency(s, "sometimes")
