"""Table 4: scheduling strategies on Trading with both caches off (latency, hit rate);
verdicts: Helium (CAS) fastest with the highest hit rate, LSPF gains little.
"""

from __future__ import annotations

from experiments.paper import SCHEDULERS
from paper_figs.common import CLAIM_MARGIN, HAIR_MARGIN, fmt, label, verdict_claim
from paper_figs.context import DrawContext


def draw_table4(ctx: DrawContext) -> None:
    rows_csv, rows_md = [], []
    lat: dict[str, float] = {}
    hit: dict[str, float] = {}
    for sy in SCHEDULERS:
        p = ctx.one(system=sy)
        s = None if p is None else ctx.summary(p)
        if s:
            lat[sy], hit[sy] = ctx.latency(s), 100 * s["prefix_hit_rate"]
        rows_csv.append({"system": sy, "latency_s": lat.get(sy), "prefix_hit_rate_pct":
                         hit.get(sy)})
        rows_md.append([label(sy), fmt(lat.get(sy)), fmt(hit.get(sy))])
    ctx.md(["strategy", "latency (s)", "prefix hit rate (%)"], rows_md,
           ["Paper states no numbers: Helium is fastest with the highest hit rate; LSPF gains "
            "little over Random.", *ctx.artifact.notes])
    ctx.csv(rows_csv, ["system", "latency_s", "prefix_hit_rate_pct"])
    if lat:
        fastest = min(lat, key=lat.__getitem__)
        hair = "" if len(lat) < 2 or min(v for s, v in lat.items() if s != fastest) >= (
            lat[fastest] * (1 + HAIR_MARGIN)) else f" (by < {HAIR_MARGIN:.0%})"
        best_hit = max(hit, key=hit.__getitem__)
        ctx.section.row("fastest strategy", label(fastest) + hair, "Helium")
        ctx.section.row("highest hit rate", label(best_hit), "Helium")
        ctx.section.verdicts.append(verdict_claim(f"Helium (CAS) is fastest (by >= "
                                                  f"{HAIR_MARGIN:.0%})",
                                                  fastest == "helium_cas" and not hair,
                                                  f"fastest: {label(fastest)}{hair}"))
        ctx.section.verdicts.append(verdict_claim("Helium (CAS) has the highest hit rate",
                                                  best_hit == "helium_cas",
                                                  f"highest: {label(best_hit)}"))
    if "lspf" in lat and "random" in lat:
        gain = (lat["random"] - lat["lspf"]) / lat["random"]
        ctx.section.row("LSPF latency gain over Random", f"{gain:+.1%}", "little")
        he_gain = ((lat["random"] - lat["helium_cas"]) / lat["random"]
                   if "helium_cas" in lat else None)
        ctx.section.verdicts.append(verdict_claim(
            f"LSPF gains little (< {CLAIM_MARGIN:.0%}) over Random", gain < CLAIM_MARGIN,
            f"LSPF {gain:+.1%} vs Random" + (f" (Helium {he_gain:+.1%})" if he_gain is not None
                                             else "")))
