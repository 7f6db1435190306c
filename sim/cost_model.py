"""Iteration time of one engine step as a narrow function of the batch.

A step computes prefill chunks (new tokens after some context) and decodes (one token
after some context). `CostModel.step_time(batch)` returns its duration in seconds.

`RooflineCost` calibration (Qwen3-8B, H100 SXM, public single-engine vLLM measurements
quoted in PAPER.md §9; the paper's own latencies are never used):

- Two parts per step, each the max of its compute and memory time, plus CPU overhead:
  GEMMs (2 FLOP per weight per token, weights streamed once) and attention (4 FLOP per
  head-dim per query per key, KV of every context token read once, new KV written).
- Compute efficiency `flops_eff` = 5,353 / 8,935 = 0.60: the published ratio of measured
  to roofline-predicted throughput in the compute-heavy regime.
- Memory efficiency `bw_eff` = 0.80: an assumption (achievable HBM bandwidth of decode
  GEMV kernels); with one concurrency-1 point only the sum of weight-streaming time and
  fixed overhead is identified, so one of the two must be assumed.
- Three public points fix the two CPU-overhead terms (a fixed time per step and a time
  per scheduled sequence), with the assumed context of ~512 tokens for the chat points:
  (a) Qwen3-8B at concurrency 1, 7.3 ms per output token: weights streamed per step are
  7.567e9 params * 2 B = 15.13 GB -> 15.13e9 / (3.35e12 * 0.80) = 5.647 ms, KV read
  512 * 144 KiB / 2.68e12 B/s = 0.028 ms, so step + seq overhead = 7.3 - 5.675 = 1.625 ms;
  (b) concurrency 8, 7.7 ms; (c) Llama-3-8B, 256-in/256-out with large batches,
  ~12.5k total tokens/s (simulated: 1,000 requests at once, max_num_seqs 256,
  max_num_batched_tokens 8192, KV from `capacity.py`). Holding (a) exactly, a least-squares
  fit of the relative errors of (b) and (c) gives `seq_overhead_s` = 0.085 ms and
  `step_overhead_s` = 1.625 - 0.085 = 1.540 ms; then (b) is predicted at 8.10 ms (+5%)
  and (c) at 12.5k tokens/s (+0%). (b) alone would allow 0.03 ms per sequence, but then
  (c) comes out 54% too fast: the pure roofline over-predicts throughput, as published.
- Tests re-check (a)-(c) within +-20% and the KV capacities. Not fitted: a 1,000-token
  prefill alone takes ~26 ms, below the 59-75 ms TTFT measured through the OpenAI server (HTTP,
  tokenization and queueing are outside the engine step; the driver's submit overhead
  models part of them).

`ConstantCost` is the null model for tests; `FittedStepCost` loads coefficients fitted to a
real engine's measurements (see its docstring for the JSON format).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from sim.errors import SimError
from sim.hardware import Hardware
from sim.models import ModelShape


@dataclass(frozen=True)
class BatchShape:
    """One step's work: prefill chunks as (new tokens, context before), decode contexts."""

    prefills: tuple[tuple[int, int], ...] = ()
    decodes: tuple[int, ...] = ()

    @property
    def num_tokens(self) -> int:
        return sum(n for n, _ in self.prefills) + len(self.decodes)

    @property
    def num_seqs(self) -> int:
        return len(self.prefills) + len(self.decodes)

    @property
    def attention_pairs(self) -> float:
        """(query, key) pairs attended: sum of n * (context + (n + 1) / 2)."""
        pre = sum(n * (c + (n + 1) / 2) for n, c in self.prefills)
        return pre + sum(c + 1 for c in self.decodes)

    @property
    def kv_read_tokens(self) -> int:
        """Context tokens whose KV is read (once per sequence)."""
        return sum(c for _, c in self.prefills) + sum(self.decodes)


class Batch(Protocol):
    """What cost models read of a step: `BatchShape`, `StepTotals`, or a `DecodeStep` of a
    decode run."""

    @property
    def num_tokens(self) -> int: ...

    @property
    def num_seqs(self) -> int: ...

    @property
    def attention_pairs(self) -> float: ...

    @property
    def kv_read_tokens(self) -> int: ...


@dataclass(frozen=True)
class DecodeStep:
    """A pure-decode step of `n` sequences whose contexts sum to `context_sum`: the same
    four numbers a `BatchShape(decodes=...)` gives, without the per-sequence tuple."""

    n: int
    context_sum: int

    @property
    def num_tokens(self) -> int:
        return self.n

    @property
    def num_seqs(self) -> int:
        return self.n

    @property
    def attention_pairs(self) -> float:
        return self.context_sum + self.n

    @property
    def kv_read_tokens(self) -> int:
        return self.context_sum


@dataclass(frozen=True)
class StepTotals:
    """The four numbers of a `Batch`, already summed (the scheduler's step totals)."""

    num_tokens: int
    num_seqs: int
    attention_pairs: float
    kv_read_tokens: int


class CostModel(Protocol):
    def step_time(self, batch: Batch) -> float:
        """Seconds one engine step takes for `batch` (non-empty)."""
        ...


def decode_run_times(cost: CostModel, n: int, context_sum: int, steps: int) -> list[float]:
    """Durations of `steps` consecutive decode steps of `n` sequences whose contexts sum
    to `context_sum` at the first step (each context grows by one per step)."""
    if isinstance(cost, RooflineCost):  # the same floats, without a DecodeStep per step
        return cost.decode_run_times(n, context_sum, steps)
    return [cost.step_time(DecodeStep(n, context_sum + s * n)) for s in range(steps)]


@dataclass(frozen=True)
class ConstantCost:
    """Null model: a fixed time per step plus an optional time per batched token."""

    step_s: float = 0.01
    per_token_s: float = 0.0

    def step_time(self, batch: Batch) -> float:
        return self.step_s + self.per_token_s * batch.num_tokens


@dataclass(frozen=True)
class RooflineCalibration:
    flops_eff: float = 0.60
    bw_eff: float = 0.80
    step_overhead_s: float = 1.540e-3
    seq_overhead_s: float = 0.085e-3


@dataclass(frozen=True)
class RooflineCost:
    """Roofline from model shapes and datasheet peaks, plus calibrated CPU overhead."""

    model: ModelShape
    hardware: Hardware
    calib: RooflineCalibration = RooflineCalibration()

    def step_time(self, batch: Batch) -> float:
        c = self._terms
        num_tokens, num_seqs = batch.num_tokens, batch.num_seqs
        gemm_flops = 2 * (c.body * num_tokens + c.lm_head * num_seqs)
        attn_flops = c.attn_flops_per_pair * batch.attention_pairs
        attn_bytes = c.kv_bytes_per_token * (batch.kv_read_tokens + num_tokens)
        gemm = max(gemm_flops / c.flops_s, c.gemm_bytes_time)
        attn = max(attn_flops / c.flops_s, attn_bytes / c.bytes_s)
        return gemm + attn + c.step_overhead_s + c.seq_overhead_s * num_seqs

    def decode_run_times(self, n: int, context_sum: int, steps: int) -> list[float]:
        """`step_time` of the decode steps `DecodeStep(n, context_sum + s * n)`, s < steps,
        bit for bit: the same operations on the same values, with the GEMM term and the
        per-sequence overhead (equal in every step of the run) computed once."""
        c = self._terms
        flops_s, bytes_s, pair_flops, kvb = (c.flops_s, c.bytes_s, c.attn_flops_per_pair,
                                             c.kv_bytes_per_token)
        gemm = max(2 * (c.body * n + c.lm_head * n) / flops_s, c.gemm_bytes_time)
        step_s, seqs_s = c.step_overhead_s, c.seq_overhead_s * n
        # a decode's attention pairs and KV tokens read-or-written are both ctx + n
        first, stop = context_sum + n, context_sum + n + steps * n
        if max(pair_flops, kvb) * stop < 1 << 53:
            # every integer below 2**53: numpy's int64 products and their conversion to
            # float64 are exact, as Python's are; the float operations are the same IEEE
            # ones in the same order (np.maximum picks the same value as max)
            pairs = np.arange(first, stop, n, dtype=np.int64)
            attn = np.maximum(pairs * pair_flops / flops_s, pairs * kvb / bytes_s)
            times: list[float] = (gemm + attn + step_s + seqs_s).tolist()
            return times
        return [gemm + max(pair_flops * pairs / flops_s, kvb * pairs / bytes_s) + step_s
                + seqs_s for pairs in range(first, stop, n)]

    @functools.cached_property
    def _terms(self) -> _RooflineTerms:
        m, hw, k = self.model, self.hardware, self.calib
        bytes_s = hw.mem_bandwidth * k.bw_eff
        return _RooflineTerms(
            body=m.body_matmul_params, lm_head=m.lm_head_params,
            flops_s=hw.peak_flops * k.flops_eff, bytes_s=bytes_s,
            gemm_bytes_time=(m.body_matmul_params + m.lm_head_params) * m.dtype_bytes / bytes_s,
            attn_flops_per_pair=4 * m.num_layers * m.num_heads * m.head_dim,
            kv_bytes_per_token=m.kv_bytes_per_token,
            step_overhead_s=k.step_overhead_s, seq_overhead_s=k.seq_overhead_s)


@dataclass(frozen=True)
class _RooflineTerms:
    """`RooflineCost`'s batch-independent values, each computed by the same expression
    `step_time` used to evaluate per step (integers exact; floats the same operations)."""

    body: int
    lm_head: int
    flops_s: float
    bytes_s: float
    gemm_bytes_time: float
    attn_flops_per_pair: int
    kv_bytes_per_token: int
    step_overhead_s: float
    seq_overhead_s: float


TABLE_COEFFS = ("step_s", "per_token_s", "per_seq_s", "per_attn_pair_s", "per_kv_token_s")


@dataclass(frozen=True)
class FittedStepCost:
    """Linear model fitted to a real engine (`runtime/` calibration), loaded from JSON.

    step_time = step_s + per_token_s * tokens + per_seq_s * sequences
                + per_attn_pair_s * attention pairs + per_kv_token_s * context tokens read

    File format: {"entries": [{"model": "qwen3-8b", "hardware": "h100-sxm",
    "coeffs": {<the five names above>: seconds}, ...}, ...]} (extra entry keys such as
    "source" or "fit_r2" are kept for provenance and ignored here).
    """

    step_s: float
    per_token_s: float
    per_seq_s: float
    per_attn_pair_s: float
    per_kv_token_s: float

    @classmethod
    def load(cls, path: str | Path, model: str, hardware: str) -> FittedStepCost:
        try:
            doc = json.loads(Path(path).read_text(encoding="utf-8"))
            entries = doc["entries"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise SimError(f"{path}: not a cost table ({e})") from None
        found = [e for e in entries
                 if e.get("model") == model and e.get("hardware") == hardware]
        if not found:
            have = sorted({(e.get("model"), e.get("hardware")) for e in entries})
            raise SimError(f"{path}: no entry for model {model!r} on {hardware!r}; "
                           f"have {have}")
        coeffs = found[-1].get("coeffs", {})
        missing = [c for c in TABLE_COEFFS if c not in coeffs]
        extra = sorted(set(coeffs) - set(TABLE_COEFFS))
        if missing or extra:
            raise SimError(f"{path}: entry {model}/{hardware} has missing coefficients "
                           f"{missing} and unknown ones {extra}")
        return cls(*(float(coeffs[c]) for c in TABLE_COEFFS))

    def step_time(self, batch: Batch) -> float:
        return (self.step_s + self.per_token_s * batch.num_tokens
                + self.per_seq_s * batch.num_seqs
                + self.per_attn_pair_s * batch.attention_pairs
                + self.per_kv_token_s * batch.kv_read_tokens)
