"""Profile a real vLLM engine and fit the simulator's `FittedStepCost` to it.

    python -m runtime.calibrate --model tiny --out costs.json [--hardware cpu]
        [--model-path DIR] [--block-size 32] [--quick]

One engine runs a fixed measurement plan (random token ids, so nothing is shared unless
the plan shares it on purpose):

- prefill alone at several lengths, cold (no cache hit);
- prefill of a new suffix after a cached prefix (prefix warmed first), several sizes;
- decode at several batch sizes and context lengths (`max_tokens` 24);
- wide batches (64-256 sequences decoding, a short shared head and contexts of their
  own), several prompts prefilled in one step, and decodes running while new prompts are
  chunked in: the batches the workflows run (a fit over 1-32 sequences alone
  overpredicted the validation's 129-256-sequence steps by 22-29%, docs/decisions.md);

and every engine step is recorded with its batch, as the simulator sees it (prefill chunks
as (new tokens, context before), decode contexts) and its wall time around
`LLMEngine.step()`. The five `FittedStepCost` coefficients (`step_s`, `per_token_s`,
`per_seq_s`, `per_attn_pair_s`, `per_kv_token_s`) are the non-negative least-squares fit
of step time on (1, tokens, sequences, attention pairs, context tokens read) over all
steps; `fit_r2` is the fit's R^2 on those steps. The entry for (model, hardware) in the
JSON table at `--out` is replaced (others kept), written atomically, with `source` and
`fit_r2` for provenance. About 30 s on a 2-core CPU with the tiny model.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from helium_lab.config import EngineSettings, ModelSettings
from helium_lab.io import atomic_write_json
from runtime.engine import StepShape, VllmEngine

COEFFS = ("step_s", "per_token_s", "per_seq_s", "per_attn_pair_s", "per_kv_token_s")
RESERVED_IDS = 16  # keep clear of the special tokens at the start of the vocabulary
KV_TOKENS = 262_144  # the plan's widest batch holds ~121k tokens of its own (tiny: 128 MiB)


def features(s: StepShape) -> list[float]:
    """(1, tokens, sequences, attention pairs, context read): `sim.BatchShape`'s terms."""
    pairs = sum(n * (c + (n + 1) / 2) for n, c in s.prefills) + sum(c + 1 for c in s.decodes)
    kv_read = sum(c for _, c in s.prefills) + sum(s.decodes)
    return [1.0, float(s.num_tokens), float(len(s.prefills) + len(s.decodes)), pairs,
            float(kv_read)]


def fit(steps: Sequence[StepShape]) -> tuple[dict[str, float], float]:
    """Non-negative least squares of step time on `features`; returns (coeffs, R^2)."""
    import numpy as np
    from scipy.optimize import nnls

    x = np.array([features(s) for s in steps])
    y = np.array([s.dt for s in steps])
    scale = x.max(axis=0)
    scale[scale == 0] = 1.0
    coef, _ = nnls(x / scale, y)
    coef = coef / scale
    pred = x @ coef
    ss_tot = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - float(((y - pred) ** 2).sum()) / ss_tot if ss_tot > 0 else 0.0
    return dict(zip(COEFFS, (float(c) for c in coef), strict=True)), r2


class Profiler:
    """Runs the measurement plan on one engine and keeps its steps."""

    def __init__(self, engine: VllmEngine, vocab: int, seed: int = 0) -> None:
        self.engine = engine
        self.vocab = vocab
        self.rng = random.Random(seed)

    def ids(self, n: int) -> tuple[int, ...]:
        return tuple(self.rng.randrange(RESERVED_IDS, self.vocab) for _ in range(n))

    def drain(self) -> None:
        while self.engine.has_work:
            self.engine.step()

    def run(self, batch: list[tuple[tuple[int, ...], int]], *, then: int = 0,
            later: list[tuple[tuple[int, ...], int]] | None = None) -> None:
        """Add `batch`, step `then` times, add `later` (steps that mix the first batch's
        decodes with the second's prefill chunks), drain."""
        for ids, max_tokens in batch:
            self.engine.add_raw(ids, max_tokens)
        for _ in range(then):
            if self.engine.has_work:
                self.engine.step()
        for ids, max_tokens in later or ():
            self.engine.add_raw(ids, max_tokens)
        self.drain()

    def shared(self, prefix: tuple[int, ...], n: int, new: int, max_tokens: int
               ) -> list[tuple[tuple[int, ...], int]]:
        """`n` requests of `prefix` plus `new` tokens of their own each."""
        return [(prefix + self.ids(new), max_tokens) for _ in range(n)]

    def plan(self, max_len: int, quick: bool = False, kv_tokens: int = KV_TOKENS) -> None:
        """The measurement plan (module docstring). Batches reach the operating range of
        the workflows it serves: up to 256 sequences (`max_num_seqs` is far above it, and
        the validation's batches average 35-185 requests), many-sequence prefill steps
        filling the token budget, and steps mixing decodes with prefill chunks; a batch
        is left out if it would not fit half of `kv_tokens`."""
        reps = 1 if quick else 2
        lengths = [n for n in (32, 128, 256, 512, 1024, 1536, 3072, 6144) if n < max_len - 64]
        for _ in range(reps):
            for n in lengths:  # cold prefill alone
                self.run([(self.ids(n), 1)])
            for prefix in (n for n in (256, 1024) if n < max_len // 2):  # cached prefix
                shared = self.ids(prefix)
                self.run([(shared, 1)])
                for new in (32, 128, 512):
                    self.run([(shared + self.ids(new), 1)])
        for ctx in (n for n in (64, 512, 1024, 4096) if n < max_len - 64):  # decode
            for batch in (1, 4, 16, 32) if not quick else (1, 8):
                self.run([(self.ids(ctx), 24) for _ in range(batch)])
        if quick:
            return
        budget = kv_tokens // 2  # headroom for the allocator's rounding and the tails
        # Wide batches: a short shared prefix and a long context of each sequence's own,
        # as the workflows' calls (a role or system prompt, then their own documents).
        # Not one long shared prefix: a plan whose wide batches shared 448 tokens fitted a
        # table 10-15% below the workflows' steps (docs/decisions.md).
        for prefix_len, new in ((64, 448), (32, 160)):
            head = self.ids(prefix_len)
            self.run([(head, 1)])
            for batch in (64, 128, 256):
                if prefix_len + batch * (new + 24) <= budget:
                    self.run(self.shared(head, batch, new, 24))
        for n, new in ((8, 480), (32, 120), (64, 56)):  # several prefills in one step
            self.run([(self.ids(new), 1) for _ in range(n)])
        head = self.ids(64)  # decodes running while new prompts are chunked in
        self.run([(head, 1)])
        for running, arriving in ((64, 16), (128, 64), (192, 64)):
            self.run(self.shared(head, running, 448, 24), then=4,
                     later=self.shared(head, arriving, 448, 16))


def update_table(path: Path, entry: dict[str, Any]) -> None:
    """Replace the (model, hardware) entry of the JSON table at `path`, atomically."""
    doc: dict[str, Any] = {"entries": []}
    if path.is_file():
        doc = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(doc.get("entries"), list):
            raise ValueError(f"{path}: not a cost table (no 'entries' list)")
    doc["entries"] = [e for e in doc["entries"]
                      if (e.get("model"), e.get("hardware"))
                      != (entry["model"], entry["hardware"])] + [entry]
    atomic_write_json(path, doc)


def calibrate(model: ModelSettings, out: Path, hardware: str = "cpu", block_size: int = 32,
              max_model_len: int = 2048, quick: bool = False, seed: int = 0
              ) -> dict[str, Any]:
    from runtime.session import VllmSession

    kv_tokens = max(KV_TOKENS, 2 * max_model_len)
    settings = EngineSettings(block_size=block_size, max_model_len=max_model_len,
                              kv_capacity_tokens=kv_tokens)
    with VllmSession(model, settings, 1, seed=seed) as session:
        engine = session.local_engine(0)
        prof = Profiler(engine, len(session.tokenizer.hf), seed)
        prof.run([(prof.ids(64), 4)])  # warm-up, not fitted
        first = len(engine.steps)
        prof.plan(max_len=max_model_len, quick=quick, kv_tokens=kv_tokens)
        steps = engine.steps[first:]
        import vllm

        version = vllm.__version__
    coeffs, r2 = fit(steps)
    entry = {"model": model.name, "hardware": hardware, "coeffs": coeffs,
             "fit_r2": round(r2, 4), "num_steps": len(steps),
             "source": f"runtime.calibrate: vLLM {version} in-process, block_size "
                       f"{block_size}, {len(steps)} steps, "
                       f"{dt.datetime.now(dt.UTC).isoformat(timespec='seconds')}"}
    update_table(out, entry)
    return entry


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m runtime.calibrate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="model name (e.g. tiny)")
    p.add_argument("--model-path", default=None, help="local model folder (tiny: built)")
    p.add_argument("--out", required=True, type=Path, help="JSON cost table to update")
    p.add_argument("--hardware", default="cpu", help="hardware name of the entry")
    p.add_argument("--block-size", type=int, default=32)
    p.add_argument("--max-model-len", type=int, default=2048)
    p.add_argument("--quick", action="store_true", help="fewer measurements (tests)")
    a = p.parse_args(argv)
    entry = calibrate(ModelSettings(a.model, a.model_path), a.out, a.hardware, a.block_size,
                      a.max_model_len, a.quick)
    print(json.dumps(entry, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
