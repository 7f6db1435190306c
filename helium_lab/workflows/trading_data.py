"""Synthetic per-stock inputs of the Trading workload (PAPER.md §7.3, §12.3 fin_data).

One query is one stock on one trading day. The inputs are those of the reference program
(helium_demo ``benchmark/bench_programs/trading/helium.py::HeliumTradingProgram.create_agent``,
data from ``bench_utils/datasets/fin_data/fin_data.py::FinancialDataset.get_data``), all
sized in tokens:

* ``stock``: the ticker symbol (the only per-query text every prompt has; the date never
  appears in a prompt);
* fundamentals, identical on every day: ``company_profile`` (placed in all five
  fundamentals prompts), ``balance_sheet``, ``income_stmt``, ``cashflow``,
  ``insider_sentiment`` (insider transactions are off in the reference runs,
  ``include_insider_transactions=False``);
* market, new each day: ``stock_price`` (daily OHLCV table), ``stock_stats`` (indicator
  table, the largest input, up to ~30k tokens);
* ``news_chunk_0..4`` (10 articles each), new each day;
* ``social_media_chunk_0..2`` (10 Reddit posts each), identical on every day.

Day-invariant fields are keyed by (seed, stock, field) only; the others also by the day, so
the warm-up day (2024-06-01) and the evaluated day (2024-06-02) share exactly the
fundamentals and social data, which is what the prompt cache exploits (9 calls per stock).
"""

from __future__ import annotations

import datetime

from helium_lab.errors import ConfigError
from helium_lab.workflows.text import QueryText

NAME = "trading"
FUNDAMENTALS = ("balance_sheet", "income_stmt", "cashflow", "insider_sentiment")
MARKET = ("stock_price", "stock_stats")
NEWS = tuple(f"news_chunk_{k}" for k in range(5))
SOCIAL = tuple(f"social_media_chunk_{k}" for k in range(3))
DAY_INVARIANT = ("company_profile", *FUNDAMENTALS, *SOCIAL)

# Token length (mean, lo, hi) of each kind of document. Means: the reference's per-op prompt
# tokens minus the static prompt around the document (Qwen3-8B profile of 30 dev stocks,
# benchmark/prebuilt/Qwen3-8B/helium_trading_findata.dill);
# lo/hi about ±2σ of that profile. With trading.py's static sizes they give the
# profiled prompt means (e.g. balance sheet extraction 2534 = 273 static + 310 + 1951).
SIZES: dict[str, tuple[int, int, int]] = {
    "company_profile": (310, 220, 420),      # profile keys of get_data; σ≈44
    "balance_sheet": (1951, 1500, 2500),     # prompt 2534±238
    "income_stmt": (861, 650, 1100),         # prompt 1440±112
    "cashflow": (912, 650, 1200),            # prompt 1497±134
    "insider_sentiment": (319, 150, 550),    # prompt 903±101
    "stock_price": (15736, 5000, 26000),     # prompt 16606±5271
    "stock_stats": (17745, 2000, 30000),     # prompt 18615±9774, the largest (hi: 32k ctx)
    "news_chunk": (785, 550, 1100),          # prompts 979..1075 (±85..145)
    "social_media_chunk": (4590, 1500, 8000),  # prompts 4598..5093 (±1.4k..1.9k)
}


def check_day(day: object) -> str:
    """`day` as an ISO date string, or a ConfigError."""
    try:
        return datetime.date.fromisoformat(str(day)).isoformat()
    except ValueError:
        raise ConfigError(f"workflow {NAME!r}: parameter 'day' must be an ISO date "
                          f"(YYYY-MM-DD), got {day!r}") from None


def _doc(gen: QueryText, stock: int, field: str, day: str) -> str:
    size = SIZES[field.rstrip("_0123456789")]
    key = field if field in DAY_INVARIANT else f"{field}@{day}"
    return gen.sized(stock, key, *size)


def stock_bindings(batch_size: int, seed: int, day: str) -> dict[str, list[str]]:
    """Every input of the Trading graph for `batch_size` stocks on `day`."""
    gen = QueryText(NAME, seed)
    out = {"stock": [gen.words(i, "ticker", 1).upper() for i in range(batch_size)]}
    for field in ("company_profile", *FUNDAMENTALS, *MARKET, *NEWS, *SOCIAL):
        out[field] = [_doc(gen, i, field, day) for i in range(batch_size)]
    return out
