"""The numbers the paper states about its results, in one place.

Only what the paper states in a table, a figure's text or its setup (per-point curves are
not given): PAPER.md §8's "Numbers stated by the paper" column, plus §4.5 and §9 where
named. `paper_figs` draws and judges our results against them; each entry names its
source. System names are this testbed's (`conf/system/`). The file is left out of the
code version (`paper_figs.store.CODE_EXCLUDE`): a corrected number changes no run.
"""

from __future__ import annotations

from typing import Any

PAPER: dict[str, Any] = {
    # Table 2 (PAPER.md §8): latency relative to Helium, avg / min / max over the 7
    # primitive workloads
    "table2": {
        "vllm": (66.27, 38.18, 100.92), "opwise": (1.25, 1.02, 1.58),
        "langgraph": (1.28, 1.09, 1.83), "agentscope": (2.10, 1.07, 4.32),
        "parrot": (1.44, 1.02, 2.21), "kvflow": (1.32, 1.14, 1.56)},
    # Fig. 5 (§8): "Helium is fastest on every workload" (of the 7)
    "fig5": {"helium_fastest_workloads": 7},
    # Fig. 7 (§8): Helium's "up to" speedups over each baseline; Helium ≈130 s at the
    # default point (Qwen3-8B, batch 16; also §9)
    "fig7": {"up_to_speedup": {"vllm": 39.5, "opwise": 4.25, "langgraph": 1.49,
                               "agentscope": 1.46, "parrot": 2.51, "kvflow": 1.34},
             "default_helium_s": 130.0},
    # Table 3 (§8): ablation latencies on Trading (batch 16, Qwen3-8B), seconds
    "table3": {"helium": 130.14, "helium_no_kv": 134.76, "helium_no_pp": 160.53,
               "helium_no_pc": 147.79, "helium_no_cas": 153.12},
    # Table 4 (§8, no numbers): Helium (CAS) is fastest and has the highest hit rate
    "table4": {"fastest": "helium_cas", "highest_hit_rate": "helium_cas"},
    # Table 5 (§8, §4.5): Helium's gap to the MILP optimum, average / max (%); the
    # MILP's timeout per instance (§4.5 setup), hours
    "table5": {"helium": {"gap_avg_pct": 0.9, "gap_max_pct": 3.6}, "milp_time_limit_h": 6},
    # Fig. 8 (§8): Helium's absolute advantage widens with batch size and rounds
    "fig8": {"advantage_widens_with": ["batch", "rounds"]},
    # Fig. 9 (§8): both degrade as KV shrinks; Helium degrades less
    "fig9": {"kv_degrades_both": True, "helium_degrades_less": True},
    # Fig. 10 (§8): up to 2.07x over LangGraph, at (Debate, P1)
    "fig10": {"max_speedup": 2.07, "at": ("Debate", "P1")},
    # Fig. 11 (§8): planning < 230 ms at 16 branches; scheduling metadata 552 KiB
    # (Helium) vs 14.8 MiB (SGLang RadixCache, not modelled here)
    "fig11": {"planning_ms_max_at_16": 230.0, "helium_metadata_kib": 552.0,
              "sglang_radix_mib": 14.8},
    # Fig. 12 (§8): Helium / LangGraph 1.18x batched requests on average, batched tokens
    # 1.41x at peak and 1.18x on average; p50 and p95 latency LangGraph → Helium (s);
    # (§9) up to ≈190 batched requests and ≈1.0M effective batched tokens
    "fig12": {"mean_requests_ratio": 1.18, "peak_tokens_ratio": 1.41,
              "mean_tokens_ratio": 1.18, "p50_s": {"langgraph": 28.3, "helium": 20.5},
              "p95_s": {"langgraph": 51.7, "helium": 37.2}, "peak_requests": 190,
              "peak_effective_tokens": 1.0e6},
    # Table 7 (§8): Helium's prefix-cache hit rate on Qwen3-8B (%)
    "table7": {"helium_qwen3-8b_pct": 59.2},
}
