"""Trading (PAPER.md §7.3, §11, §12.1; modeled on TradingAgents): one query is one stock.

Stages and LLM ops (``B = branches``, ``R = rounds``)::

    analysts  fundamentals 4 docs + report | market 2 + 1 | news 5 + 1 | social 3 + 1   18
    research  bull, bear, each once per round                                        2R
              research manager (investment plan)                                       1
    desks     B x [trader (own persona) -> risky, safe, neutral once per round
                   -> risk judge]                                               B(3R + 2)
    fund manager (aggregates the desks)                                                1

so ``20 + 2R + B(3R + 2)`` ops: 88 at the defaults (B=8, R=2); 56/120/152 at B=4/12/16;
114/140/166 at R=3/4/5. Every debate turn reads all earlier turns of its debate.

The fundamentals and social subgraphs read only day-invariant inputs (no date), so their
prompts repeat exactly between the warm-up day and the evaluated day. Params: ``branches=8``,
``rounds=2``, ``day="2024-06-02"`` (warm-up: ``"2024-06-01"``).

Token sizes (§12.3): prompts ≈3457 [774, 18615], outputs ≈508 (mostly at the 512 cap).
"""

from __future__ import annotations

from helium_lab.dsl import BoundGraph, LLMOp, Op, Workflow
from helium_lab.workflows import trading_data as data
from helium_lab.workflows.base import SAMPLING, check_int, finish, labelled, names, profile
from helium_lab.workflows.text import static_text

NAME = data.NAME
FULL = profile(510, 2)
TEAMS = {"fundamentals": data.FUNDAMENTALS, "market": data.MARKET, "news": data.NEWS,
         "social": data.SOCIAL}
DATED_TEAMS = ("market", "news")
RISK_ROLES = ("risky", "safe", "neutral")
PERSONAS = ("value investor", "growth investor", "momentum trader", "news-driven trader",
            "contrarian trader", "technical trader", "income investor", "macro trader",
            "quantitative trader", "swing trader", "event-driven trader", "ESG investor",
            "small-cap specialist", "defensive investor", "arbitrage trader",
            "index investor")
Parts = list[str | Op]


def _llm(wf: Workflow, name: str, system: str, user: Parts) -> LLMOp:
    return wf.llm([("system", system), ("user", user)], name=name, sampling=SAMPLING,
                  profile=FULL)


def _prompt(key: str, n: int, title: str) -> str:
    return static_text(f"{NAME}/{key}", n, title)


def _analyst(wf: Workflow, team: str, docs: tuple[str, ...], header: Parts) -> LLMOp:
    """One analyst team: a report per document, then the team's report."""
    system = _prompt(team, 250, f"You are the {team} analyst of a trading firm.")
    read = _prompt(f"{team}/read", 30, "Analyze this document for the company.")
    notes = [_llm(wf, f"{team}/{doc}", system, [read, *header, "\n", wf.input(doc)])
             for doc in docs]
    write = _prompt(f"{team}/write", 40, f"Write the {team} report from your notes.")
    parts = labelled([(f"Notes on {doc}", n) for doc, n in zip(docs, notes, strict=True)])
    return _llm(wf, f"{team}/report", system, [write, *header, *parts])


def _turns(wf: Workflow, prefix: str, team: str, roles: tuple[str, ...], rounds: int,
           context: Parts) -> list[tuple[str, LLMOp]]:
    """A debate: each role speaks once per round, reading `context` and all earlier turns.
    Role prompts are keyed by `team` (shared by every desk), op names by `prefix`."""
    turns: list[tuple[str, LLMOp]] = []
    for r in range(1, rounds + 1):
        for role in roles:
            system = _prompt(f"{team}/{role}", 250, f"You are the {role} {team} analyst.")
            instr = _prompt(f"{team}/{role}/argue", 40, "Make your argument.")
            user = [*context, "\nDebate so far:", *labelled(turns), "\n", instr]
            turns.append((f"{role} (round {r})", _llm(wf, f"{prefix}/{role}{r}", system, user)))
    return turns


def _desk(wf: Workflow, b: int, persona: str, reports: Parts, plan: LLMOp,
          header: Parts, rounds: int) -> LLMOp:
    """Trader branch `b`: the trader's plan, its risk debate, and the risk judge's verdict."""
    system = _prompt(f"trader/{persona}", 300, f"You are a {persona}.")
    instr = _prompt("trader/decide", 40, "Propose a trade: buy, hold or sell, and size.")
    trader = _llm(wf, f"desk{b}/trader", system,
                  [*reports, "\nInvestment plan:\n", plan, "\n", instr])
    turns = _turns(wf, f"desk{b}", "risk", RISK_ROLES, rounds,
                   [*reports, "\nTrader's plan:\n", trader])
    judge = _prompt("risk_judge", 300, "You are the risk management judge.")
    verdict = _prompt("risk_judge/decide", 40, "Approve, adjust or reject the trade.")
    return _llm(wf, f"desk{b}/judge", judge,
                [*header, "\nTrader's plan:\n", trader, "\nRisk debate:", *labelled(turns),
                 verdict])


def _build(wf: Workflow, branches: int, rounds: int) -> LLMOp:
    ticker, date = wf.input("ticker"), wf.input("date")
    plain: Parts = ["\nCompany: ", ticker]
    dated: Parts = [*plain, "\nDate: ", date]
    reports = {team: _analyst(wf, team, docs, dated if team in DATED_TEAMS else plain)
               for team, docs in TEAMS.items()}
    context = [*dated, *labelled([(f"{t} report", op) for t, op in reports.items()])]
    turns = _turns(wf, "research", "research", ("bull", "bear"), rounds, context)
    manager = _llm(wf, "research/manager",
                   _prompt("research_manager", 300, "You are the research manager."),
                   [*context, "\nDebate:", *labelled(turns),
                    _prompt("research_manager/plan", 40, "Write the investment plan.")])
    desks = [(f"Desk {b + 1} ({p})", _desk(wf, b + 1, p, context, manager, dated, rounds))
             for b, p in enumerate(names(PERSONAS, branches, "trader"))]
    return wf.llm([("system", _prompt("fund_manager", 300, "You are the fund manager.")),
                   ("user", [*dated, "\nInvestment plan:\n", manager, "\nDesk decisions:",
                             *labelled(desks),
                             _prompt("fund_manager/decide", 40, "Make the final decision.")])],
                  name="fund_manager", sampling=SAMPLING, profile=profile(357, 57))


def trading(*, batch_size: int, seed: int = 0, branches: int = 8, rounds: int = 2,
            day: str = "2024-06-02") -> BoundGraph:
    """The Trading workflow over `batch_size` synthetic stocks on `day`."""
    wf = Workflow(NAME)
    check_int(wf.name, "batch_size", batch_size)
    check_int(wf.name, "branches", branches)
    check_int(wf.name, "rounds", rounds)
    day = data.check_day(day)
    wf.output("decision", _build(wf, branches, rounds))
    return finish(wf, data.stock_bindings(batch_size, seed, day), batch_size=batch_size,
                  seed=seed, params={"branches": branches, "rounds": rounds, "day": day})

