"""REPORT.md: per artifact, our numbers beside the paper's and computed verdicts.

Each drawn artifact leaves `out/.sections/<name>.json`; REPORT.md is rebuilt from every
section present, so `python -m paper_figs fig7` updates fig7's block and keeps the others
(each block says which code version drew it)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from experiments.paper import ARTIFACT_NAMES
from helium_lab.io import atomic_write_json, atomic_write_text
from paper_figs.common import (
    CLAIM_MARGIN,
    EFFECT_TOL,
    HAIR_MARGIN,
    MIN_EFFECT_SHARE,
    RATIO_TOL,
    Section,
)


def save_section(out: Path, sec: Section) -> None:
    atomic_write_json(out / ".sections" / f"{sec.name}.json", sec.to_dict())


def load_sections(out: Path) -> dict[str, Section]:
    secs = {}
    for name in ARTIFACT_NAMES:
        p = out / ".sections" / f"{name}.json"
        if p.is_file():
            try:
                secs[name] = Section.from_dict(json.loads(p.read_text()))
            except (ValueError, TypeError):
                continue
    return secs


def verdict_counts(secs: Iterable[Section]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for s in secs:
        for v in s.verdicts:
            head = v.split(":", 1)[0]
            counts[head] = counts.get(head, 0) + 1
    return counts


def write_report(out: Path, *, profile: str, version: str, meta: dict[str, Any],
                 planning_time: str = "off") -> Path:
    secs = load_sections(out)
    counts = verdict_counts(secs.values())
    lines = [
        "# Paper artifacts: our numbers vs the paper's",
        "",
        f"Generated {time.strftime('%Y-%m-%d %H:%M:%S')} by `python -m paper_figs` "
        f"(profile `{profile}`, code version `{version}`).",
        "",
        "Verdicts are computed from the numbers (paper_figs/common.py): an absolute value "
        f"(latency, size) is REPRODUCED within ±{RATIO_TOL:.0%} of the paper's; a ratio "
        "whose meaning is its distance from 1 (speedup, slowdown vs Helium, 'x more') is "
        f"REPRODUCED when its effect (ratio − 1) is within ±{EFFECT_TOL:.0%} of the paper's, "
        f"PARTIAL when it goes the paper's way with at least {MIN_EFFECT_SHARE:.0%} of it, "
        "NOT REPRODUCED otherwise (no effect, the other way, or an overshoot beyond "
        f"{1 + EFFECT_TOL:.0%} of the paper's effect); hit rates and gaps within a few "
        "points; claims (fastest, ranking, widens, degrades less) by whether they hold, with "
        f"a {CLAIM_MARGIN:.0%} margin for 'more/less', and not when they hold only by a hair "
        f"(less than {HAIR_MARGIN:.0%} of the latency concerned). Verdicts that are not "
        "reproductions "
        "carry the measured indicators of the runs compared (LLM calls: plan rewriting and "
        "prompt cache; prefix hit rate; mean running batch; evicted KV blocks; preemptions). "
        "Latency = simulated makespan (prewarm included)"
        + (" + the planner's measured wall time (`--planning-time measured`)."
           if planning_time == "measured" else "; the planner's wall time is reported by "
           "Fig. 11 and not added (`--planning-time off`), so the numbers do not depend on "
           "the machine."),
        "",
        "Verdict counts: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())),
        "",
    ]
    for k, v in meta.items():
        lines.append(f"- {k}: {v}")
    lines.append("")
    lines.append("| artifact | verdicts |")
    lines.append("|---|---|")
    for name, sec in secs.items():
        c = verdict_counts([sec])
        lines.append(f"| {name} | " + (", ".join(f"{k} {v}" for k, v in sorted(c.items()))
                                        or "no data") + " |")
    lines.append("")
    for name in ARTIFACT_NAMES:
        one = secs.get(name)
        if one is None:
            continue
        if one.code_version and one.code_version != version:
            one.notes.append(f"drawn from code version {one.code_version}, not the current "
                             f"{version}: re-run `python -m paper_figs {name}`")
        lines.append(one.markdown())
    return atomic_write_text(out / "REPORT.md", "\n".join(lines))
