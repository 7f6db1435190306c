"""The paper's evaluation artifacts (PAPER.md §8) and the runs that make each of them.

Every artifact is a list of *points*: labels (what the drawer groups by: system, model,
batch, ...) plus one `Run`, a list of Hydra overrides of `python -m helium_lab.run`. Runs
are identified by their overrides alone (`Run.key`), so a run shared by several artifacts
(Trading's default point appears in Figs. 7, 8, 9, 12 and Tables 3, 7) is one folder and
runs once. `paper_figs` executes the missing runs and draws; nothing here runs anything.

Two profiles:

* `paper` (default): the paper's sizes everywhere (177 runs, ~10 minutes on a 2-core
  machine since the simulator's speed work).
* `quick`: reduced sizes for iterating on drawers and models (137 runs, a few minutes).
  Every difference from the paper's setup is listed in the artifact's `reductions` (and
  copied into REPORT.md).

The numbers the paper states, for the side-by-side comparison, are in
`experiments.paper_numbers` (`PAPER`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from experiments.paper_numbers import PAPER
from helium_lab.errors import ConfigError

PROFILES = ("quick", "paper")
DEFAULT_PROFILE = "paper"

# Artifacts in the order of PAPER.md §8, then ours.
ARTIFACT_NAMES = ("fig5", "table2", "fig7", "table3", "table4", "table5", "fig8", "fig9",
                  "fig10", "fig11", "fig12", "table7", "sim_vs_real")

# Systems of the end-to-end comparisons, in the paper's legend order.
BASELINES = ("vllm", "opwise", "langgraph", "agentscope", "parrot", "kvflow", "helium")
FIG5_SYSTEMS = ("opwise", "langgraph", "agentscope", "parrot", "kvflow", "helium")
ABLATIONS = ("helium", "helium_no_kv", "helium_no_pp", "helium_no_pc", "helium_no_cas")
SCHEDULERS = ("querywise", "opwise", "random", "lspf", "helium_cas")
SCALING_SYSTEMS = ("helium", "langgraph")

# Primitive workloads of Fig. 5 / Table 2: name -> (preset, paper batch size).
WORKLOADS: dict[str, tuple[str, int]] = {
    "MapRed-MMLU": ("mapred_mmlu", 200),
    "MapRed-TAT-QA": ("mapred_tatqa", 100),
    "Debate-MMLU": ("debate", 200),
    "Debate-TAT-QA": ("debate_tatqa", 100),
    "Reflect-TAT-QA": ("reflect", 200),
    "Iterative-Amazon": ("iterative", 200),
    "Parallel-Amazon": ("parallel", 100),
}

TRADING_BATCHES = (8, 16, 32, 64, 80)
TRADING_BRANCHES = (4, 8, 12, 16)
TRADING_ROUNDS = (2, 3, 4, 5)
TRADING_WORKERS = (1, 2)
MODELS = ("llama-3.1-8b", "qwen3-8b", "qwen3-14b", "qwen3-32b")
KV_CAPACITIES: tuple[int | None, ...] = (65536, 131072, 262144, None)  # None = full
SYNTHETIC_CONFIGS = ("P1", "P2", "P3", "P4", "P5", "P6")
SYNTHETIC_WORKFLOWS = {"MapRed": "fig10_mapred", "Debate": "fig10_debate"}

_SLUG_RE = re.compile(r"[^A-Za-z0-9_-]+")


@dataclass(frozen=True)
class Run:
    """One `helium_lab.run` job: its Hydra overrides (`progress=false` is always added)."""

    overrides: tuple[str, ...]

    @property
    def key(self) -> str:
        """Folder name and sweep choice: the overrides, readable, filesystem- and Hydra-safe."""
        parts = []
        for o in self.overrides:
            k, _, v = o.lstrip("+").partition("=")
            k = k.removeprefix("workflow_params.").removeprefix("engine.")
            parts.append(v if k == "experiment" else f"{k}-{v}")
        return _SLUG_RE.sub("_", "__".join(parts))

    @property
    def task(self) -> str:
        exp = next((o.split("=", 1)[1] for o in self.overrides if o.startswith("+experiment=")),
                   "")
        return exp if exp in ("table5_optimality", "planner_overhead") else "workflow"


@dataclass(frozen=True)
class Point:
    """One drawn point: labels the drawer groups by, and the run that measures it."""

    labels: Mapping[str, Any]
    run: Run


@dataclass(frozen=True)
class Artifact:
    name: str
    kind: Literal["figure", "table"]
    title: str
    points: tuple[Point, ...]
    reductions: tuple[str, ...] = ()
    external: str | None = None  # results read from elsewhere (sim_vs_real)
    notes: tuple[str, ...] = field(default=())

    @property
    def runs(self) -> list[Run]:
        seen: dict[str, Run] = {}
        for p in self.points:
            seen.setdefault(p.run.key, p.run)
        return list(seen.values())

    def select(self, **labels: Any) -> list[Point]:
        return [p for p in self.points
                if all(p.labels.get(k) == v for k, v in labels.items())]


class UnknownArtifactError(ConfigError):
    """An artifact name that is not in ARTIFACT_NAMES."""


# --- run builders: only non-default values become overrides, so equal runs get equal keys --

def trading_run(system: str, *, model: str = "qwen3-8b", batch: int = 16, branches: int = 8,
                rounds: int = 2, workers: int = 2, kv: int | None = None) -> Run:
    o = ["+experiment=trading", f"system={system}"]
    if model != "qwen3-8b":
        o.append(f"model={model}")
    if batch != 16:
        o.append(f"batch_size={batch}")
    if branches != 8:
        o.append(f"workflow_params.branches={branches}")
    if rounds != 2:
        o.append(f"workflow_params.rounds={rounds}")
    if workers != 2:
        o.append(f"num_workers={workers}")
    if kv is not None:
        o.append(f"engine.kv_capacity_tokens={kv}")
    return Run(tuple(o))


def workload_run(preset: str, system: str, batch: int | None = None) -> Run:
    o = [f"+experiment={preset}", f"system={system}"]
    if batch is not None:
        o.append(f"batch_size={batch}")
    return Run(tuple(o))


def synthetic_run(preset: str, system: str, config: str, batch: int | None = None) -> Run:
    o = [f"+experiment={preset}", f"system={system}", f"workflow_params.config={config}"]
    if batch is not None:
        o.append(f"batch_size={batch}")
    return Run(tuple(o))


# --- the quick profile's reductions (one place) -------------------------------------------

@dataclass(frozen=True)
class Sizes:
    workload_scale: float          # Fig. 5 / Table 2 batch = paper batch x scale
    trading_batches: tuple[int, ...]          # Fig. 7, all systems
    scaling_batches: tuple[int, ...]          # Fig. 8a and Fig. 7 (Helium, LangGraph; 8B)
    synthetic_batch: int                      # Fig. 10
    milp_time_limit_s: float | None           # Table 5 (None = the preset's)
    overhead_repeats: int | None              # Fig. 11 (None = the preset's)
    overhead_scaling_batch: int | None


SIZES = {
    "paper": Sizes(1.0, TRADING_BATCHES, TRADING_BATCHES, 100,
                   None, None, None),
    "quick": Sizes(0.5, (8, 16), (8, 16, 32), 100, None, 3, 256),
}


def _scaled(batch: int, scale: float) -> int | None:
    """None (the preset's own batch) at scale 1, else the scaled batch, at least 2."""
    return None if scale == 1.0 else max(2, round(batch * scale))


def _reduction_text(profile: str) -> dict[str, list[str]]:
    s, p = SIZES[profile], SIZES["paper"]
    out: dict[str, list[str]] = {}
    if s.workload_scale != 1.0:
        out["workloads"] = [
            f"batch sizes x{s.workload_scale:g} of the paper's ("
            + ", ".join(f"{w} {_scaled(b, s.workload_scale)}" for w, (_, b) in WORKLOADS.items())
            + ")"]
    if s.trading_batches != p.trading_batches:
        out["trading_batches"] = [
            f"Trading batches {list(s.trading_batches)} for every system (paper "
            f"{list(p.trading_batches)}); Helium and LangGraph on Qwen3-8B also at "
            f"{[b for b in s.scaling_batches if b not in s.trading_batches]} (the Fig. 8a runs); "
            "points not run are drawn empty"]
    if s.scaling_batches != p.scaling_batches:
        out["scaling"] = [f"Fig. 8a batches {list(s.scaling_batches)} (paper "
                          f"{list(p.scaling_batches)})"]
    if s.synthetic_batch != p.synthetic_batch:
        out["synthetic"] = [f"batch {s.synthetic_batch} (paper {p.synthetic_batch})"]
    if s.milp_time_limit_s is not None:
        out["milp"] = [f"MILP time limit {s.milp_time_limit_s:g} s per instance (paper: "
                       f"{PAPER['table5']['milp_time_limit_h']:g} h; instances not solved to "
                       "optimality are flagged)"]
    if s.overhead_repeats is not None:
        out["overhead"] = [f"{s.overhead_repeats} timing repeats, batch-scaling check at "
                           f"{s.overhead_scaling_batch} queries"]
    return out


# --- the registry -------------------------------------------------------------------------

def _workload_points(s: Sizes, systems: Iterable[str]) -> list[Point]:
    pts = []
    for wl, (preset, batch) in WORKLOADS.items():
        pts += [Point({"workload": wl, "system": system},
                      workload_run(preset, system, _scaled(batch, s.workload_scale)))
                for system in systems]
    return pts


def build_artifacts(profile: str = DEFAULT_PROFILE) -> dict[str, Artifact]:
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r}; known: {list(PROFILES)}")
    s = SIZES[profile]
    red = _reduction_text(profile)
    arts: list[Artifact] = []

    arts.append(Artifact(
        "fig5", "figure", "Normalized end-to-end latency on the primitive workflows (Qwen3-8B)",
        tuple(_workload_points(s, FIG5_SYSTEMS)), tuple(red.get("workloads", []))))
    arts.append(Artifact(
        "table2", "table", "Latency relative to Helium over the 7 primitive workloads",
        tuple(_workload_points(s, BASELINES)), tuple(red.get("workloads", []))))

    fig7 = []
    for model in ("qwen3-8b", "qwen3-14b"):
        for system in BASELINES:
            batches = sorted(set(s.trading_batches) | (
                set(s.scaling_batches) if model == "qwen3-8b" and system in SCALING_SYSTEMS
                else set()))
            for b in batches:
                fig7.append(Point({"model": model, "system": system, "batch": b},
                                  trading_run(system, model=model, batch=b)))
    arts.append(Artifact("fig7", "figure", "Trading end-to-end latency vs batch size",
                         tuple(fig7), tuple(red.get("trading_batches", []))))

    arts.append(Artifact("table3", "table", "Ablation on Trading (batch 16, Qwen3-8B)",
                         tuple(Point({"system": a}, trading_run(a)) for a in ABLATIONS)))
    arts.append(Artifact(
        "table4", "table", "Scheduling strategies on Trading with both caches off",
        tuple(Point({"system": a}, trading_run(a)) for a in SCHEDULERS),
        notes=("OpWise here is the end-to-end OpWise baseline (conf/system/opwise.yaml: "
               "queue-length router, HTTP overhead); the others run in Helium's runtime.",)))

    t5 = ["+experiment=table5_optimality", "table5.soft_bound=true"]
    if s.milp_time_limit_s is not None:
        t5.append(f"table5.milp_time_limit_s={s.milp_time_limit_s:g}")
    arts.append(Artifact("table5", "table", "Optimality gap against the exact MILP",
                         (Point({}, Run(tuple(t5))),), tuple(red.get("milp", []))))

    fig8 = []
    for system in SCALING_SYSTEMS:
        fig8 += [Point({"panel": "a", "x": b, "system": system}, trading_run(system, batch=b))
                 for b in s.scaling_batches]
        fig8 += [Point({"panel": "b", "x": n, "system": system},
                       trading_run(system, branches=n)) for n in TRADING_BRANCHES]
        fig8 += [Point({"panel": "c", "x": r, "system": system}, trading_run(system, rounds=r))
                 for r in TRADING_ROUNDS]
        fig8 += [Point({"panel": "d", "x": w, "system": system},
                       trading_run(system, workers=w)) for w in TRADING_WORKERS]
    arts.append(Artifact("fig8", "figure", "Scalability on Trading: Helium vs LangGraph",
                         tuple(fig8), tuple(red.get("scaling", []))))

    fig9 = []
    for system in SCALING_SYSTEMS:
        fig9 += [Point({"panel": "a", "x": m, "system": system}, trading_run(system, model=m))
                 for m in MODELS]
        fig9 += [Point({"panel": "b", "x": "full" if kv is None else kv, "system": system},
                       trading_run(system, kv=kv)) for kv in KV_CAPACITIES]
    arts.append(Artifact("fig9", "figure", "Sensitivity on Trading: Helium vs LangGraph",
                         tuple(fig9)))

    fig10 = []
    batch10 = None if s.synthetic_batch == 100 else s.synthetic_batch
    for wf, preset in SYNTHETIC_WORKFLOWS.items():
        for cfg in SYNTHETIC_CONFIGS:
            for system in SCALING_SYSTEMS:
                fig10.append(Point({"workflow": wf, "config": cfg, "system": system},
                                   synthetic_run(preset, system, cfg, batch10)))
    arts.append(Artifact("fig10", "figure", "Speedup over LangGraph on synthetic prompts",
                         tuple(fig10), tuple(red.get("synthetic", []))))

    po = ["+experiment=planner_overhead"]
    if s.overhead_repeats is not None:
        po += [f"planner_overhead.repeats={s.overhead_repeats}",
               f"planner_overhead.scaling_batch={s.overhead_scaling_batch}"]
    fig11 = [Point({"part": "planner"}, Run(tuple(po)))]
    fig11 += [Point({"part": "processing", "branches": n}, trading_run("helium", branches=n))
              for n in TRADING_BRANCHES]
    arts.append(Artifact(
        "fig11", "figure", "Planning overhead and scheduling metadata on Trading", tuple(fig11),
        tuple(red.get("overhead", [])),
        notes=("SGLang's RadixCache is not part of this testbed: Fig. 11b shows the paper's "
               f"{PAPER['fig11']['sglang_radix_mib']:g} MiB as a reference only.",)))

    arts.append(Artifact(
        "fig12", "figure", "Execution dynamics on Trading (prompt cache off)",
        (Point({"system": "helium"}, trading_run("helium_no_pc")),
         Point({"system": "langgraph"}, trading_run("langgraph"))),
        notes=("Helium with the prompt cache off is the ablation system helium_no_pc; "
               "LangGraph has no prompt cache.",)))

    arts.append(Artifact(
        "table7", "table", "Prefix-cache hit rate on Trading (batch 16)",
        tuple(Point({"model": m, "system": sy}, trading_run(sy, model=m))
              for m in ("qwen3-8b", "qwen3-14b") for sy in BASELINES)))

    arts.append(Artifact(
        "sim_vs_real", "figure", "Simulator vs real vLLM (validation experiment)", (),
        external="validate_sim",
        notes=("Needs real vLLM engines: run `python -m helium_lab.run "
               "+experiment=validate_sim` separately; never launched by paper_figs.",)))

    by_name = {a.name: a for a in arts}
    assert tuple(by_name) == ARTIFACT_NAMES
    return by_name


def resolve_names(names: Iterable[str]) -> list[str]:
    """Artifact names in registry order; 'all' or nothing = every artifact. Unknown names
    raise UnknownArtifactError listing the known ones."""
    wanted = [n.strip().lower() for n in names if n.strip()]
    if not wanted or wanted == ["all"]:
        return list(ARTIFACT_NAMES)
    unknown = [n for n in wanted if n not in ARTIFACT_NAMES]
    if unknown:
        raise UnknownArtifactError(
            f"unknown artifact(s) {unknown}; known: {', '.join(ARTIFACT_NAMES)} (or 'all')")
    return [n for n in ARTIFACT_NAMES if n in wanted]


def all_runs(artifacts: Iterable[Artifact]) -> dict[str, Run]:
    """Distinct runs of the given artifacts by key (shared runs once)."""
    out: dict[str, Run] = {}
    for a in artifacts:
        for r in a.runs:
            prev = out.setdefault(r.key, r)
            if prev.overrides != r.overrides:
                raise ConfigError(f"run key collision: {prev.overrides} vs {r.overrides}")
    return out
