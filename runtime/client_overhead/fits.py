"""Least-squares fits of the measurements and the models they give (numpy only).

Contract: `fit_sizes` fits ``cpu_ms = a + b * prompt_kchars + c * output_kchars`` over grid
rows (`Point.summary()`), `predict_sizes` evaluates it, `orchestration_keys` turns the
fits into `system.orchestration` keys (``client_call_s``, ``client_prompt_token_s``,
``client_output_token_s``); `pool_model_ms` evaluates the pool-pass fit (`pool.fit_pool`)
on recorded pool statistics (`measure.pool_stats`); `r2` is the coefficient of
determination used by both fits.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from runtime.client_overhead.workloads import CHARS_PER_TOKEN


def pool_model_ms(f: dict[str, float], stats: dict[str, float]) -> float:
    """Pool bookkeeping CPU per call predicted by the pass model from `pool_stats`."""
    per_pass_us = (f["c0_us"] + f["c_conn_us"] * stats["pool_mean_connections"]
                   + f["c_idle_us"] * stats["pool_mean_idle"]
                   + f["c_pair_us"] * stats["pool_mean_conn_x_idle"])
    return stats["pool_passes_per_call"] * per_pass_us / 1e3


def r2(y: np.ndarray, pred: np.ndarray) -> float:
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    return round(1.0 - float(np.sum((y - pred) ** 2)) / ss_tot, 4) if ss_tot > 0 else 1.0


def fit_sizes(points: list[dict[str, Any]]) -> dict[str, float]:
    """Least squares cpu_ms = a + b * prompt_kchars + c * output_kchars over `points`."""
    x = np.array([[1.0, p["prompt_kchars_per_call"], p["output_kchars_per_call"]]
                  for p in points])
    y = np.array([p["cpu_ms_per_call"] for p in points])
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    pred = x @ coef
    return {
        "a_ms": round(float(coef[0]), 4),
        "b_ms_per_prompt_kchar": round(float(coef[1]), 4),
        "c_ms_per_output_kchar": round(float(coef[2]), 4),
        "r2": r2(y, pred),
        "max_abs_residual_ms": round(float(np.max(np.abs(y - pred))), 4),
        "points": len(points),
    }


def orchestration_keys(size_fits: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """The size fits as `system.orchestration` keys (helium_lab.config.Orchestration):
    seconds per call, per prompt token and per output token at CHARS_PER_TOKEN characters
    a token; a negative coefficient (below this machine's noise) becomes 0. The fixed
    part is `a_ms`, pool share included (one connection: ~0.04 ms)."""
    per_token_s = CHARS_PER_TOKEN / 1000 / 1000  # (ms per kchar) -> (s per token)
    return {kind: {
        "client_call_s": round(f["a_ms"] / 1000, 7),
        "client_prompt_token_s": float(f"{max(0.0, f['b_ms_per_prompt_kchar']) * per_token_s:.3g}"),
        "client_output_token_s": float(f"{max(0.0, f['c_ms_per_output_kchar']) * per_token_s:.3g}"),
    } for kind, f in size_fits.items()}


def predict_sizes(f: dict[str, float], prompt_kchars: float, output_kchars: float) -> float:
    return (f["a_ms"] + f["b_ms_per_prompt_kchar"] * prompt_kchars
            + f["c_ms_per_output_kchar"] * output_kchars)

