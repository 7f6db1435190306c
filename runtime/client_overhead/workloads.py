"""The benchmark's shared constants, prompt workloads and measurement records.

Contract: `prompt_text(n)` is deterministic prose of ≈ n * CHARS_PER_TOKEN characters and
`messages(prompt)` the chat messages every stack sends; `Tally` counts content characters
per call in a driver, `Sample` is one timed run and `Point` one grid point's samples with
`summary()` the JSON row written to the report. Imports nothing from the other modules.
"""

from __future__ import annotations

import random
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHARS_PER_TOKEN = 4
MODEL = "mock-model"
SYSTEM_PROMPT = "You are a careful expert. Answer the question using the context."
REPO_ROOT = Path(__file__).resolve().parents[2]

_VOCAB = ("the", "market", "revenue", "growth", "of", "quarter", "analysts", "expect",
          "a", "strong", "decline", "in", "margins", "question:", "context", "table",
          "2024", "net", "income", "per", "share", "was", "reported", "as", "\"adjusted\"",
          "and", "operating", "cash", "flow", "increased", "by", "12.5%", "compared", "to",
          "prior", "year,", "while", "guidance", "remains", "unchanged.")


def prompt_text(n_tokens: int, seed: int = 0) -> str:
    """Deterministic prose of ≈ `n_tokens` * 4 characters, with quotes and newlines."""
    rng = random.Random(seed)
    target = n_tokens * CHARS_PER_TOKEN
    parts: list[str] = []
    size = 0
    while size < target:
        word = rng.choice(_VOCAB)
        sep = "\n" if rng.random() < 0.03 else " "
        parts.append(word + sep)
        size += len(word) + 1
    return "".join(parts)[:target]


@dataclass
class Tally:
    """Content characters sent and received by the client, counted in the driver."""

    calls: int = 0
    prompt_chars: int = 0
    output_chars: int = 0

    def add(self, messages_chars: int, output: str) -> None:
        self.calls += 1
        self.prompt_chars += messages_chars
        self.output_chars += len(output)


def messages(prompt: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": prompt}]


@dataclass
class Sample:
    cpu_s: float
    user_s: float
    sys_s: float
    wall_s: float
    calls: int
    prompt_chars: int
    output_chars: int
    pool_connections: int


@dataclass
class Point:
    kind: str
    prompt_tokens: int
    output_tokens: int
    concurrency: str
    samples: list[Sample] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        calls = self.samples[0].calls

        def med(values: Any) -> float:
            return round(statistics.median(values), 4)

        return {
            "kind": self.kind,
            "prompt_tokens": self.prompt_tokens,
            "output_tokens": self.output_tokens,
            "concurrency": self.concurrency,
            "calls_per_repeat": calls,
            "prompt_kchars_per_call": round(self.samples[0].prompt_chars / calls / 1e3, 4),
            "output_kchars_per_call": round(self.samples[0].output_chars / calls / 1e3, 4),
            "cpu_ms_per_call": med(1e3 * s.cpu_s / s.calls for s in self.samples),
            "user_ms_per_call": med(1e3 * s.user_s / s.calls for s in self.samples),
            "sys_ms_per_call": med(1e3 * s.sys_s / s.calls for s in self.samples),
            "wall_ms_per_call": med(1e3 * s.wall_s / s.calls for s in self.samples),
            "cpu_ms_per_call_repeats": [round(1e3 * s.cpu_s / s.calls, 4)
                                        for s in self.samples],
            "pool_connections": max(s.pool_connections for s in self.samples),
        }

