"""Synthetic per-stock inputs of the Trading workload (PAPER.md §7.3, §12.3 fin_data).

One query is one stock on one trading day. Inputs (all sized in tokens):

* ``ticker``; ``date`` (the `day`);
* fundamentals, identical on every day: ``profile`` (company profile and insider
  sentiment), ``balance_sheet``, ``income_statement``, ``cash_flow``;
* market, new each day: ``price_history`` (the largest prompt, up to ~18k tokens),
  ``stock_stats``;
* ``news1..news5`` (up to 10 articles each), new each day;
* ``social1..social3`` (up to 10 posts each), identical on every day.

Day-invariant fields are keyed by (seed, stock, field) only; the others also by the day, so
the warm-up day (2024-06-01) and the evaluated day (2024-06-02) share exactly the
fundamentals and social data, which is what the prompt cache exploits.
"""

from __future__ import annotations

import datetime

from helium_lab.errors import ConfigError
from helium_lab.workflows.text import QueryText

NAME = "trading"
FUNDAMENTALS = ("profile", "balance_sheet", "income_statement", "cash_flow")
MARKET = ("price_history", "stock_stats")
NEWS = tuple(f"news{k}" for k in range(1, 6))
SOCIAL = tuple(f"social{k}" for k in range(1, 4))
DAY_INVARIANT = (*FUNDAMENTALS, *SOCIAL)

# token length (mean, lo, hi) of each kind of document
SIZES: dict[str, tuple[int, int, int]] = {
    "profile": (500, 250, 900),
    "balance_sheet": (1500, 600, 3500),
    "income_statement": (1200, 500, 3000),
    "cash_flow": (1200, 500, 3000),
    "price_history": (6000, 2500, 18000),
    "stock_stats": (500, 300, 900),
    "news": (1500, 400, 2600),
    "social": (800, 300, 1500),
}


def check_day(day: object) -> str:
    """`day` as an ISO date string, or a ConfigError."""
    try:
        return datetime.date.fromisoformat(str(day)).isoformat()
    except ValueError:
        raise ConfigError(f"workflow {NAME!r}: parameter 'day' must be an ISO date "
                          f"(YYYY-MM-DD), got {day!r}") from None


def _doc(gen: QueryText, stock: int, field: str, day: str) -> str:
    size = SIZES[field.rstrip("0123456789")]
    key = field if field in DAY_INVARIANT else f"{field}@{day}"
    return gen.sized(stock, key, *size)


def stock_bindings(batch_size: int, seed: int, day: str) -> dict[str, list[str]]:
    """Every input of the Trading graph for `batch_size` stocks on `day`."""
    gen = QueryText(NAME, seed)
    out = {"ticker": [gen.words(i, "ticker", 1).upper() for i in range(batch_size)],
           "date": [day] * batch_size}
    for field in (*FUNDAMENTALS, *MARKET, *NEWS, *SOCIAL):
        out[field] = [_doc(gen, i, field, day) for i in range(batch_size)]
    return out
