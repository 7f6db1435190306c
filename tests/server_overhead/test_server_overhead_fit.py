"""The pure part of `runtime.server_overhead`: the least-squares fit (no server, no vLLM).
Kept out of tests/runtime, whose conftest skips every test there without vLLM."""

from __future__ import annotations

import itertools
import random

import pytest

from runtime.server_overhead.fit import fit_cost


def _points(a: float, b: float, c: float, noise: float = 0.0) -> list[dict[str, float]]:
    rng = random.Random(0)
    return [{"prompt_tokens": p, "output_tokens": o,
             "api_cpu_per_request_s": a + b * p + c * o + rng.uniform(-noise, noise)}
            for p, o in itertools.product([256, 1024, 4096], [1, 32])]


def test_fit_recovers_known_coefficients() -> None:
    a, b, c = 2.5e-3, 4.0e-6, 5.0e-5
    f = fit_cost(_points(a, b, c))
    assert f["a_s"] == pytest.approx(a, rel=1e-9)
    assert f["b_s_per_prompt_token"] == pytest.approx(b, rel=1e-9)
    assert f["c_s_per_output_token"] == pytest.approx(c, rel=1e-9)
    assert f["r2"] == pytest.approx(1.0)
    assert f["max_abs_residual_s"] < 1e-12
    assert len(f["residuals"]) == 6


def test_fit_residuals_are_measured_minus_fitted() -> None:
    pts = _points(1e-3, 2e-6, 3e-5, noise=2e-4)
    f = fit_cost(pts)
    for p, r in zip(pts, f["residuals"], strict=True):
        fitted = (f["a_s"] + f["b_s_per_prompt_token"] * p["prompt_tokens"]
                  + f["c_s_per_output_token"] * p["output_tokens"])
        assert r["fitted_s"] == pytest.approx(fitted)
        assert r["residual_s"] == pytest.approx(p["api_cpu_per_request_s"] - fitted)
    assert sum(r["residual_s"] for r in f["residuals"]) == pytest.approx(0.0, abs=1e-12)
    assert f["max_abs_residual_s"] <= 2e-4 * 2
    assert f["a_s"] == pytest.approx(1e-3, abs=4e-4)  # noise moves it, not far


def test_fit_uses_the_named_key() -> None:
    pts = [{**p, "other": 7.0 + p["prompt_tokens"]} for p in _points(1.0, 0.0, 0.0)]
    f = fit_cost(pts, key="other")
    assert f["a_s"] == pytest.approx(7.0)
    assert f["b_s_per_prompt_token"] == pytest.approx(1.0)


def test_fit_refuses_a_grid_that_cannot_determine_three_coefficients() -> None:
    one_output = [p for p in _points(1.0, 1.0, 1.0) if p["output_tokens"] == 1]
    with pytest.raises(ValueError, match="distinct prompt and output lengths"):
        fit_cost(one_output)


def test_cli_refuses_a_grid_the_fit_cannot_use_before_measuring() -> None:
    from runtime.server_overhead.cli import parse

    with pytest.raises(SystemExit) as e:
        parse(["--prompt-tokens", "256", "--max-tokens", "1", "64"])
    assert e.value.code == 2
