"""Seeded synthetic text sized in tokens.

The project's synthetic tokenizer counts one token per whitespace-separated word, so a text
of `n` words is `n` tokens. Two kinds of text appear in the workloads:

* static prompts (system/role prompts, instructions): `static_text(key, n)` depends only on
  `key` (e.g. ``"trading/bull"``), so it is identical across queries, batches and seeds;
* per-query data (questions, contexts, reviews, documents): `QueryText(workflow, seed)` draws
  a length for each (query, field) from its own `random.Random` keyed by
  (workflow, seed, query, field) and fills it with `synthetic_text` keyed the same way. A field
  therefore never depends on which other fields were drawn, which is what lets Trading keep
  its fundamentals and social data identical across days (the day is part of the key of the
  day-dependent fields only).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass

from helium_lab.tokenizer import synthetic_text


def static_text(key: str, n_tokens: int, title: str = "") -> str:
    """`n_tokens` words: `title`'s words, then filler seeded only by `key`."""
    head = title.split()[:n_tokens]
    filler = synthetic_text(f"static/{key}", n_tokens - len(head), prefix="s")
    return " ".join(w for w in (*head, filler) if w)


def draw_length(rng: random.Random, mean: float, lo: int, hi: int) -> int:
    """A length in [lo, hi] with expectation ~`mean` (triangular, mode chosen to fit)."""
    if lo >= hi:
        return lo
    mode = min(max(3 * mean - lo - hi, lo), hi)
    return round(rng.triangular(lo, hi, mode))


@dataclass(frozen=True)
class QueryText:
    """Per-query synthetic data of one workload instance (`workflow`, `seed`)."""

    workflow: str
    seed: int

    def key(self, query: int, field: str) -> str:
        return f"{self.workflow}/{self.seed}/{query}/{field}"

    def rng(self, query: int, field: str) -> random.Random:
        """A generator private to (query, field): draws from it never shift other fields."""
        return random.Random(self.key(query, field))

    def words(self, query: int, field: str, n_tokens: int) -> str:
        """Exactly `n_tokens` pseudo-random words for this (query, field)."""
        return synthetic_text(self.key(query, field), n_tokens)

    def sized(self, query: int, field: str, mean: float, lo: int, hi: int) -> str:
        """Words for this (query, field) with a seeded length around `mean` in [lo, hi]."""
        return self.words(query, field, draw_length(self.rng(query, field), mean, lo, hi))

    def mmlu_question(self, query: int) -> str:
        """A multiple-choice question: a stem and four options (~80 tokens)."""
        stem = self.sized(query, "question", 50, 15, 130)
        opts = [f"{c}) {self.sized(query, f'option{c}', 5, 1, 14)}" for c in "ABCD"]
        return "\n".join([stem, *opts])

    def tatqa_context(self, query: int) -> str:
        """Report paragraphs followed by a pipe table (~400 tokens)."""
        rng = self.rng(query, "table")
        rows, cols = rng.randint(4, 10), rng.randint(3, 5)
        table = [
            "| " + " | ".join(self.words(query, f"cell{r}.{c}", 1) for c in range(cols)) + " |"
            for r in range(rows)
        ]
        paragraphs = [self.sized(query, f"paragraph{k}", 125, 30, 250) for k in range(3)]
        return "\n".join([*paragraphs, *table])

    def tatqa_question(self, query: int, k: int) -> str:
        return self.sized(query, f"question{k}", 18, 8, 35)

    def product_description(self, query: int) -> str:
        """A product description in the reference's template (helium_demo
        `parallel/base.py` `_get_item_description`, Amazon Reviews 2023 item metadata),
        ~170 tokens; the field sizes are our choice (the reference's are not measured)."""
        rng = self.rng(query, "item.meta")
        return "\n".join([
            f"- Category: {self.words(query, 'item.category', 2)}",
            f"- Title: {self.sized(query, 'item.title', 12, 4, 30)}",
            f"- Average Rating: {rng.randint(10, 50) / 10}",
            f"- Rating Number: {rng.randint(5, 5000)}",
            f"- Features: {self.sized(query, 'item.features', 50, 0, 150)}",
            f"- Description: {self.sized(query, 'item.description', 50, 0, 200)}",
            f"- Price: {rng.randint(5, 300)}.99",
            f"- Store: {self.words(query, 'item.store', 2)}",
            f"- Categories: {self.sized(query, 'item.categories', 6, 2, 12)}",
            "- Details: N/A"])

    def review_chunk(self, query: int, chunk: int, reviews: int) -> str:
        """`reviews` product reviews as JSON lines (~87 tokens each)."""
        lines = []
        for r in range(reviews):
            field = f"chunk{chunk}.review{r}"
            rng = self.rng(query, field + ".meta")
            review = {
                "title": self.sized(query, field + ".title", 6, 2, 12),
                "rating": float(rng.randint(1, 5)),
                "text": self.sized(query, field + ".text", 68, 10, 200),
                "helpful_vote": rng.randint(0, 20),
            }
            lines.append(json.dumps(review))
        return "\n".join(lines)
