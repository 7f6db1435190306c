"""What the host KV tier and workflow-aware eviction change: KVFlow, LangGraph and Helium
on the Trading default point and the seven primitive workloads, simulated, with the tier
off, on, and (KVFlow) on with steps-to-execution eviction.

    python -m experiments.host_tier_ablation [--out outputs/host_tier_ablation]
        [--workloads trading,debate,...] [--scale 1.0]

Variants (engine keys; everything else is the system's own config):

- `off`: no host tier (`host_kv_ratio=null`; KVFlow's deferred loads and prefetch off too,
  since both need the tier).
- `tier`: SGLang's HiCache at helium_demo's KVFlow runner settings (`hicache_ratio=1.001`,
  `write_through`); loads inline for LangGraph and Helium (upstream SGLang), KVFlow's own
  deferred loads and step-graph prefetch for KVFlow (its config).
- `tier+hold` (KVFlow only): `tier` plus `kv_eviction=steps_to_execution` (the fork's
  `--enable-holding`, which the paper's runner did not pass).

Writes `ablation.csv` and `ablation.md` (atomically) under `--out`/<config sha>/ and
prints the table. Deterministic: the simulator reads no clock, so a re-run gives the same
numbers.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import hashlib
import io
import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from experiments.compose import composer
from experiments.paper import WORKLOADS
from helium_lab.io import atomic_write_text

SYSTEMS = ("kvflow", "langgraph", "helium")
OFF = ("engine.host_kv_ratio=null", "engine.host_kv_tokens=null", "engine.host_kv_load=inline",
       "engine.host_kv_prefetch_steps=null")
TIER = ("engine.host_kv_ratio=1.001", "engine.host_kv_write_policy=write_through")
HOLD = ("engine.kv_eviction=steps_to_execution",)
VARIANTS: dict[str, tuple[str, ...]] = {"off": OFF, "tier": TIER, "tier+hold": (*TIER, *HOLD)}
PRESETS = {"Trading": ("trading", None),
           **{name: (preset, batch) for name, (preset, batch) in WORKLOADS.items()}}
COLUMNS = ("workload", "system", "variant", "makespan_s", "prefix_hit_rate", "gpu_hit_rate",
           "host_hit_rate", "host_loaded_blocks", "evicted_blocks", "evicted_held_blocks")


def variants_of(system: str) -> list[str]:
    return list(VARIANTS) if system == "kvflow" else ["off", "tier"]


def overrides(workload: str, system: str, variant: str, scale: float) -> list[str]:
    preset, batch = PRESETS[workload]
    out = [f"+experiment={preset}", f"system={system}", "progress=false"]
    if batch is not None and scale != 1.0:
        out.append(f"batch_size={max(1, round(batch * scale))}")
    if system == "kvflow" and variant != "off":
        # KVFlow's config already selects the tier with deferred loads and prefetch
        return out + list(HOLD if variant == "tier+hold" else ())
    return out + list(VARIANTS[variant])


def run_one(cfg: dict[str, Any]) -> dict[str, Any]:
    from experiments.workflow_run import run

    with tempfile.TemporaryDirectory(prefix="host_tier_ablation-") as d, \
            contextlib.redirect_stdout(io.StringIO()):  # the run's own summary printout
        return run(cfg, Path(d))


def row(workload: str, system: str, variant: str, summary: dict[str, Any]) -> dict[str, Any]:
    return {"workload": workload, "system": system, "variant": variant,
            **{k: summary.get(k) for k in COLUMNS[3:]}}


def render(rows: Sequence[dict[str, Any]]) -> str:
    base = {(r["workload"], r["system"]): r["makespan_s"] for r in rows if r["variant"] == "off"}
    lines = ["| workload | system | variant | makespan s | vs off | prefix hit | host hit |"
             " host loads | held evictions |", "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        b = base.get((r["workload"], r["system"]))
        rel = "" if b is None or r["variant"] == "off" else f"{r['makespan_s'] / b - 1:+.2%}"
        host = "" if r["host_hit_rate"] is None else f"{r['host_hit_rate']:.1%}"
        lines.append(f"| {r['workload']} | {r['system']} | {r['variant']} | "
                     f"{r['makespan_s']:.2f} | {rel} | {r['prefix_hit_rate']:.1%} | {host} | "
                     f"{r['host_loaded_blocks'] or ''} | {r['evicted_held_blocks'] or ''} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("outputs/host_tier_ablation"))
    ap.add_argument("--workloads", default=",".join(PRESETS),
                    help=f"comma-separated, from {list(PRESETS)}")
    ap.add_argument("--scale", type=float, default=1.0,
                    help="primitive workloads' batch = paper batch x scale (Trading: its "
                         "default point)")
    args = ap.parse_args(argv)
    workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    unknown = [w for w in workloads if w not in PRESETS]
    if unknown:
        ap.error(f"--workloads: unknown {unknown}; known: {list(PRESETS)}")
    jobs = [(w, s, v) for w in workloads for s in SYSTEMS for v in variants_of(s)]
    rows = []
    with composer() as compose:
        cfgs = [compose(overrides(w, s, v, args.scale)) for w, s, v in jobs]
    key = hashlib.sha256(json.dumps(cfgs, sort_keys=True, default=str).encode()).hexdigest()
    for i, ((w, s, v), cfg) in enumerate(zip(jobs, cfgs, strict=True), 1):
        print(f"[{i}/{len(jobs)}] {w} {s} {v}", flush=True)
        rows.append(row(w, s, v, run_one(cfg)))
    out = args.out / key[:12]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out / "ablation.csv", buf.getvalue())
    table = render(rows)
    atomic_write_text(out / "ablation.md", table)
    print(table)
    print(f"written: {out}/ablation.csv, ablation.md")


if __name__ == "__main__":
    main()
