"""Shared pieces of the drawers: report sections, verdicts computed from numbers, writers."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from helium_lab.io import atomic_write_text

# A ratio or latency counts as reproduced when within this relative distance of the paper's.
RATIO_TOL = 0.20
# An effect (ratio - 1) counts as reproduced when within this share of the paper's effect.
EFFECT_TOL = 0.5
# Below this share of the paper's effect, a ratio counts as no effect at all.
MIN_EFFECT_SHARE = 0.25
# "More", "less", "widens": the difference must exceed this relative margin to count.
CLAIM_MARGIN = 0.10
# A claim that holds by less than this share of the latency it is about (Helium "fastest"
# by 0.1%, an advantage that "widens" by 2 s on a 170 s run) holds only by a hair: it does
# not count as reproduced.
HAIR_MARGIN = 0.02
# Hit rates and gaps (percentages) count as reproduced within this many points.
POINTS_TOL = 5.0

SYSTEM_LABELS = {
    "vllm": "vLLM", "opwise": "OpWise", "langgraph": "LangGraph", "agentscope": "AgentScope",
    "parrot": "Parrot", "kvflow": "KVFlow", "helium": "Helium", "querywise": "QueryWise",
    "random": "Random", "lspf": "LSPF", "helium_cas": "Helium (CAS only)",
    "helium_alg1": "Helium (Alg. 1 only)",
    "helium_no_kv": "w/o KV", "helium_no_pp": "w/o PP", "helium_no_pc": "w/o PC",
    "helium_no_cas": "w/o CAS",
}
SYSTEM_COLORS = {
    "vllm": "#7f7f7f", "opwise": "#8c564b", "langgraph": "#1f77b4", "agentscope": "#9467bd",
    "parrot": "#ff7f0e", "kvflow": "#2ca02c", "helium": "#d62728", "querywise": "#17becf",
    "random": "#bcbd22", "lspf": "#e377c2", "helium_cas": "#d62728",
}


def label(system: str) -> str:
    return SYSTEM_LABELS.get(system, system)


PLANNING_TIME = ("off", "measured")


def latency(summary: Mapping[str, Any], planning_time: str = "off") -> float:
    """End-to-end latency: execution (simulated makespan, prewarm included), plus, with
    `planning_time="measured"`, the planner's own wall time (optimizer + scheduler; ~0 for
    baselines) as the paper counts it. "off" (the default) keeps every figure a function of
    the simulated clock alone, so regenerating them anywhere gives identical numbers; the
    planner's time is Fig. 11's subject (docs/decisions.md, "Reproducible figures")."""
    if planning_time not in PLANNING_TIME:
        raise ValueError(f"planning_time must be one of {PLANNING_TIME}, got {planning_time!r}")
    extra = float(summary.get("planning_s") or 0.0) if planning_time == "measured" else 0.0
    return float(summary["makespan_s"]) + extra


@dataclass
class Section:
    """One artifact's block of REPORT.md."""

    name: str
    title: str
    files: list[str] = field(default_factory=list)
    rows: list[tuple[str, ...]] = field(default_factory=list)  # quantity, ours, paper[, effects]
    verdicts: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    reductions: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    code_version: str = ""

    def row(self, quantity: str, ours: Any, paper: Any = "—") -> None:
        self.rows.append((quantity, fmt(ours), fmt(paper)))

    def ratio_row(self, quantity: str, ours: float | None, paper: float) -> None:
        """A ratio whose meaning is its distance from 1: shown with both effects (ratio - 1)
        and ours as a share of the paper's."""
        self.rows.append((quantity, fmt(ours), fmt(paper), effect_text(ours, paper)))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(d: Mapping[str, Any]) -> Section:
        s = Section(**{k: v for k, v in d.items() if k in Section.__dataclass_fields__})
        s.rows = [tuple(r) for r in s.rows]
        return s

    def markdown(self) -> str:
        out = [f"## {self.name}: {self.title}", ""]
        if self.files:
            out.append("Files: " + ", ".join(f"`{f}`" for f in self.files))
            out.append("")
        if self.rows:
            if any(len(r) > 3 for r in self.rows):
                rows = [(*r, "") if len(r) == 3 else r for r in self.rows]
                out.append(md_table(["quantity", "ours", "paper", "effect: ours / paper"],
                                    rows))
            else:
                out.append(md_table(["quantity", "ours", "paper"], self.rows))
            out.append("")
        out += [f"- **Verdict:** {v}" for v in self.verdicts] or ["- **Verdict:** no data"]
        for r in self.reductions:
            out.append(f"- Reduced: {r}")
        for n in self.notes:
            out.append(f"- Note: {n}")
        if self.missing:
            shown = ", ".join(self.missing[:8]) + (" …" if len(self.missing) > 8 else "")
            out.append(f"- Missing runs ({len(self.missing)}, drawn empty): {shown}")
        return "\n".join(out) + "\n"


def fmt(x: Any) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, float):
        if x != x:  # NaN
            return "n/a"
        if abs(x) >= 100:
            return f"{x:.1f}"
        if abs(x) >= 10:
            return f"{x:.2f}"
        return f"{x:.3g}" if abs(x) < 1 else f"{x:.2f}"
    return str(x)


def rel(ours: float, paper: float) -> float:
    return (ours - paper) / paper if paper else float("inf")


def verdict_value(what: str, ours: float | None, paper: float, tol: float = RATIO_TOL,
                  unit: str = "") -> str:
    """Reproduced if |ours - paper| / paper <= tol, else how far off."""
    if ours is None:
        return f"NO DATA: {what} (paper {paper:g}{unit})"
    d = rel(ours, paper)
    head = "REPRODUCED" if abs(d) <= tol else "OFF"
    return (f"{head}: {what} ours {fmt(ours)}{unit} vs paper {paper:g}{unit} "
            f"({d:+.0%}; tolerance ±{tol:.0%})")


def effect_text(ours: float | None, paper: float) -> str:
    """'+0.10 / +0.25 (41%)': both effects (ratio - 1) and ours as a share of the paper's."""
    if ours is None:
        return "n/a"
    peff = paper - 1.0
    share = f" ({(ours - 1.0) / peff:.0%})" if peff else ""
    return f"{ours - 1.0:+.2f} / {peff:+.2f}{share}"


def verdict_effect(what: str, ours: float | None, paper: float, tol: float = EFFECT_TOL) -> str:
    """For a ratio whose meaning is its distance from 1 (a speedup, a slowdown relative to
    Helium, "x more"): REPRODUCED if the effect (ratio - 1) is within ±tol of the paper's
    effect; PARTIAL if it goes the paper's way with at least MIN_EFFECT_SHARE of it but
    less than 1 - tol of it; NOT REPRODUCED otherwise: no effect, the other way, or an
    overshoot beyond 1 + tol of the paper's effect (a model that exaggerates an effect
    does not reproduce it)."""
    if ours is None:
        return f"NO DATA: {what} (paper {paper:g}x)"
    eff, peff = ours - 1.0, paper - 1.0
    share = eff / peff if peff else float("inf")
    why = ""
    if abs(share - 1.0) <= tol:
        head = "REPRODUCED"
    elif MIN_EFFECT_SHARE <= share < 1.0:
        head = "PARTIAL"
    else:
        head = "NOT REPRODUCED"
        why = "overshoots; " if share > 1.0 else ""
    return (f"{head}: {what} ours {ours:.2f}x vs paper {paper:g}x (effect {share:.0%} of the "
            f"paper's; {why}tolerance ±{tol:.0%})")


def verdict_points(what: str, ours: float | None, paper: float, tol: float = POINTS_TOL,
                   unit: str = "%") -> str:
    """Reproduced if within `tol` percentage points."""
    if ours is None:
        return f"NO DATA: {what} (paper {paper:g}{unit})"
    d = ours - paper
    head = "REPRODUCED" if abs(d) <= tol else "OFF"
    return (f"{head}: {what} ours {ours:.1f}{unit} vs paper {paper:g}{unit} "
            f"({d:+.1f} points; tolerance ±{tol:g})")


def verdict_claim(claim: str, holds: bool | None, detail: str) -> str:
    if holds is None:
        return f"NO DATA: {claim} ({detail})"
    return f"{'REPRODUCED' if holds else 'NOT REPRODUCED'}: {claim} — {detail}"


def kendall_tau(a: Sequence[str], b: Sequence[str]) -> float:
    """Kendall's tau between two orderings of the same items (items in only one ignored)."""
    common = [x for x in a if x in b]
    pa = {x: i for i, x in enumerate(common)}
    pb = {x: i for i, x in enumerate([x for x in b if x in pa])}
    n = len(common)
    if n < 2:
        return float("nan")
    s = 0
    for i in range(n):
        for j in range(i + 1, n):
            x, y = common[i], common[j]
            s += 1 if (pa[x] - pa[y]) * (pb[x] - pb[y]) > 0 else -1
    return s / (n * (n - 1) / 2)


def verdict_ranking(what: str, ours: Sequence[str], paper: Sequence[str]) -> str:
    if len([x for x in ours if x in paper]) < 2:
        return f"NO DATA: {what} ranking"
    tau = kendall_tau(ours, paper)
    same = [x for x in ours if x in paper] == [x for x in paper if x in ours]
    head = "REPRODUCED" if same else ("PARTIAL" if tau > 0 else "NOT REPRODUCED")
    return (f"{head}: {what} ranking ours {' > '.join(label(x) for x in ours)}; paper "
            f"{' > '.join(label(x) for x in paper if x in ours)} (Kendall tau {tau:+.2f})")


def indicators(ours: Mapping[str, Any] | None, other: Mapping[str, Any] | None,
               name: str = "Helium", other_name: str = "baseline") -> str:
    """The mechanisms behind a latency ratio, measured: LLM calls made (plan rewriting and
    prompt cache), prefix hit rate (KV reuse), mean batch (batching)."""
    if not ours or not other:
        return ""
    text = (f"{name} vs {other_name}: calls {ours['num_llm_calls']} vs "
            f"{other['num_llm_calls']}, prefix hit {100 * ours['prefix_hit_rate']:.1f}% vs "
            f"{100 * other['prefix_hit_rate']:.1f}%, mean batch "
            f"{ours['mean_batch_requests']:.1f} vs {other['mean_batch_requests']:.1f} requests")
    for key, what in (("evicted_blocks", "evicted KV blocks"),
                      ("num_preemptions", "preemptions")):
        if key in ours and key in other:
            text += f", {what} {ours[key]} vs {other[key]}"
    return text


def with_indicators(verdict: str, ind: str) -> str:
    """Append the measured mechanism indicators to a verdict that is not a reproduction."""
    if not ind or verdict.startswith(("REPRODUCED", "NO DATA")):
        return verdict
    return f"{verdict}; indicators: {ind}"


def pooled(summaries: Iterable[Mapping[str, Any]]) -> dict[str, Any] | None:
    """Indicator fields pooled over several runs (calls and tokens summed, hit rate over the
    pooled tokens, batch size averaged), for `indicators`."""
    ss = list(summaries)
    if not ss:
        return None
    prompt = sum(s["prompt_tokens"] for s in ss)
    out: dict[str, Any] = {
            "num_llm_calls": sum(s["num_llm_calls"] for s in ss),
            "prefix_hit_rate": sum(s["cached_prompt_tokens"] for s in ss) / prompt
            if prompt else 0.0,
            "mean_batch_requests": sum(s["mean_batch_requests"] for s in ss) / len(ss)}
    for key in ("evicted_blocks", "num_preemptions"):
        if all(key in s for s in ss):
            out[key] = sum(s[key] for s in ss)
    return out


def md_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(c) if not isinstance(c, str) else c for c in r) + " |"
              for r in rows]
    return "\n".join(lines)


def write_csv(path: Path, rows: Sequence[Mapping[str, Any]],
              columns: Sequence[str] | None = None) -> Path:
    cols = list(columns) if columns is not None else (list(rows[0]) if rows else [])
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n", extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in cols})
    return atomic_write_text(path, buf.getvalue())


def write_md(path: Path, title: str, header: Sequence[str], rows: Iterable[Sequence[Any]],
             notes: Iterable[str] = (), extra: str = "") -> Path:
    text = f"# {title}\n\n{md_table(header, rows)}\n"
    notes = list(notes)
    if notes:
        text += "\n" + "\n".join(f"- {n}" for n in notes) + "\n"
    if extra:
        text += "\n" + extra.strip("\n") + "\n"
    return atomic_write_text(path, text)
