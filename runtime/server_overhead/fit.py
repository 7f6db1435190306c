"""Least-squares fit of the API server's CPU per request (numpy only).

Contract: `fit_cost(points)` fits ``y = a + b * prompt_tokens + c * output_tokens`` over
points (dicts with ``prompt_tokens``, ``output_tokens`` and the value under `key`) and
returns the coefficients (seconds, seconds per token), r², and per-point residuals
(measured − fitted). It refuses (ValueError, saying why) fewer than two distinct prompt
lengths or output lengths, where a, b and c are not all determined.
"""

from __future__ import annotations

from typing import Any

import numpy as np

KEY = "api_cpu_per_request_s"


def fit_cost(points: list[dict[str, Any]], key: str = KEY) -> dict[str, Any]:
    prompts = {p["prompt_tokens"] for p in points}
    outputs = {p["output_tokens"] for p in points}
    if len(prompts) < 2 or len(outputs) < 2:
        raise ValueError(f"fit_cost: a + b*prompt + c*output needs >= 2 distinct prompt and "
                         f"output lengths; got prompts {sorted(prompts)}, outputs "
                         f"{sorted(outputs)}")
    x = np.array([[1.0, float(p["prompt_tokens"]), float(p["output_tokens"])]
                  for p in points])
    y = np.array([float(p[key]) for p in points])
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    pred = x @ coef
    res = y - pred
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    return {
        "model": f"{key} = a_s + b_s_per_prompt_token * prompt_tokens + "
                 "c_s_per_output_token * output_tokens",
        "a_s": float(coef[0]),
        "b_s_per_prompt_token": float(coef[1]),
        "c_s_per_output_token": float(coef[2]),
        "r2": 1.0 - float(np.sum(res ** 2)) / ss_tot if ss_tot > 0 else 1.0,
        "max_abs_residual_s": float(np.max(np.abs(res))),
        "residuals": [{"prompt_tokens": p["prompt_tokens"], "output_tokens": p["output_tokens"],
                       "measured_s": float(v), "fitted_s": float(f), "residual_s": float(r)}
                      for p, v, f, r in zip(points, y, pred, res, strict=True)],
    }
