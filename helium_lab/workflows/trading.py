"""Trading (PAPER.md §7.3, §11, §12.1): one query is one stock.

Rebuilt after the reference program, helium_demo ``benchmark/bench_programs/trading/helium.py``
(``TradingAgent.build_ops``) and its prompts ``prompts/fin_data{,-4b,-12b,-16b}/*.yaml``;
token sizes from the reference's Qwen3-8B profile of 30 dev stocks
(``benchmark/prebuilt/Qwen3-8B/helium_trading_findata.dill``; docs/decisions.md, Trading).
The prompt text itself is synthetic (`static_text`), sized in tokens to the reference
templates. The date never appears in a prompt.

LLM ops per stock (``B = branches``, ``R = rounds``); every op is ``[system, user]`` except
debate rounds >= 2, which continue the speaker's own conversation (``history``)::

    analysts  one extraction per document, then a summary (team's system prompt)      18
              fundamentals: balance sheet, income stmt, cashflow, insider sentiment
                            (+ company profile in all 5 prompts) -> summary       4 + 1
              market: stock price, stock stats (the largest input) -> summary     2 + 1
              news: 5 chunks -> summary; social: 3 post chunks -> summary   5 + 1, 3 + 1
    research  bull and bear in parallel each round; round k+1 = own round-k
              conversation + the opponent's round-k answer                            2R
              research manager: stock + the debate transcript only                     1
    chains    B x [trader (persona b % 4; reads the investment plan only)
                   -> risky, safe, neutral in parallel each round (round 1 reads the
                      four summaries + the trader's decision; round k+1 = own
                      conversation + all three round-k answers, own included)
                   -> risk judge (stock + the risk transcript only)]           B(3R + 2)
    fund manager: stock + the B judges' outputs only                                   1

so ``20 + 2R + B(3R + 2)`` ops: 88 at the defaults (B=8, R=2); 56/120/152 at B=4/12/16;
114/140/166 at R=3/4/5. The reports appear in the research and risk prompts in the order
fundamentals, social, market, news; the transcripts list each round bull, bear (research)
and risky, safe, neutral (risk); the fund manager lists the judges in branch order under
the unnumbered labels Value Trader, News Trader, Technical Trader, Arbitrageur.

Redundancy (as in the reference, ``prompts/fin_data/traders.yaml``): the personas are
value trader, news trader, technical trader, arbitrageur, in that order; branch ``b`` uses
persona ``b % 4`` and the ``_2``, ``_3``, ... copies are byte-identical, so chains ``b`` and
``b + 4`` have identical prompts at every level. CSE over LLM calls (pass ``cse``, system
``helium_cse_llm``) removes ``(B - min(B, 4)) (3R + 2)`` LLM ops per stock: 32 at the
defaults (88 -> 56), none at B=4, 64/96 at B=12/16, 44 at R=3. The reference runtime's CSE
(pass ``cse_functional``, system ``helium``) and the baselines run all 88.

Agents (``agent=`` of each op; the reference's AgentScope program creates one agent per
role, per trader chain for the chain's roles, shared by every stock)::

    fundamentals_analyst  the 5 fundamentals ops     market_analyst  the 3 market ops
    news_analyst          the 6 news ops             social_media_analyst  the 4 social ops
    bull_researcher / bear_researcher  that side's R rounds
    research_manager      the manager
    trader_<p>            chain b's trader, p = <persona>_<b // 4 + 1> (value_trader_1,
                          news_trader_1, ..., arbitrageur_1, value_trader_2, ...): the
                          ``_2`` copies are distinct agents although their prompts repeat
    risky_analyst_<p>, safe_analyst_<p>, neutral_analyst_<p>  that role's R rounds in chain b
    judge_<p>             chain b's risk judge
    fund_manager          the fund manager

Day-to-day data (trading_data.py): the fundamentals and social inputs are identical on
every day, market and news are new each day. Their prompts carry no date, so on the
evaluated day (2024-06-02, after the 2024-06-01 warm-up) the prompt cache answers exactly
the 9 fundamentals and social calls of each stock; everything else reads market or news.

Token sizes: prompts ≈3457 [774, 18615], outputs ≈508 (PAPER.md §12.3 and the profile);
each size below names its source. Outputs are 512 (the cap, σ 0) for every op except the
arbitrageur trader (356.5 ± 116.2). Params: ``branches=8``, ``rounds=2``, ``day``.
"""

from __future__ import annotations

from collections.abc import Sequence

from helium_lab.dsl import BoundGraph, LLMOp, Op, OutputProfile, Workflow, history
from helium_lab.workflows import trading_data as data
from helium_lab.workflows.base import SAMPLING, check_int, finish, profile
from helium_lab.workflows.text import static_text

NAME = data.NAME
Parts = list[str | Op]
Layout = Sequence[int | str | Op]  # static runs (token counts) between message parts

# Output profiles (profile: prebuilt/Qwen3-8B/helium_trading_findata.dill, 30 stocks)
FULL = profile(512, 0)          # every op but the arbitrageur trader: 512, σ 0
ARBITRAGEUR = profile(356.5, 156)  # arbitrageur trader: 356.5 ± 116.2 -> uniform [201, 512]

# traders.yaml trader_system_prompts, in order; branch b uses PERSONAS[b % 4]
PERSONAS = ("value_trader", "news_trader", "technical_trader", "arbitrageur")
LABELS = ("Value Trader:", "News Trader:", "Technical Trader:", "Arbitrageur:")
RISK_ROLES = ("risky", "safe", "neutral")

# System prompts in tokens (reference words x ~1.3, or the profiled static part of a prompt
# minus its user template and the 5 chat-template tokens, where the profile pins it)
SYSTEM = {
    "fundamentals": 200,      # analysts/fundamentals.yaml fundamentals_system_prompt, 154 w
    "market": 805,            # analysts/market.yaml market_system_prompt, 569 w; market
                              # summary's profiled static 897 - template 87 - chat 5
    "news": 172,              # analysts/news.yaml news_system_prompt, 132 w
    "social": 225,            # analysts/social.yaml social_media_system_prompt, 183 w;
                              # social summary's profiled static 323 - 93 - 5
    "bull": 180,              # researchers.yaml bull_system_prompt, 138 w (bull r1 static 265)
    "bear": 193,              # bear_system_prompt, 144 w (bear r1 static 278 = bull's + 13)
    "research_manager": 186,  # research_manager_system_prompt, 143 w
    "risky": 125,             # risk_analysts.yaml risky_analyst_system_prompt, 97 w (r1 static 260)
    "safe": 92,               # safe_analyst_system_prompt, 67 w (r1 static 227)
    "neutral": 65,            # neutral_analyst_system_prompt, 48 w (r1 static 200)
    "judge": 182,             # judge_system_prompt, 140 w
    "fund_manager": 166,      # fund_manager.yaml fund_manager_system_prompt, 128 w
    # traders.yaml, 121-126 w; trader prompts 780 / 774 / 778 / 778 = static + 512
    "value_trader": 167, "news_trader": 161, "technical_trader": 165, "arbitrageur": 165,
}

# doc_descriptions.yaml: the document's name + description spliced into the extraction
# template at build time ((name + 14..19 words) x 1.3 tokens)
DOC_DESC = {
    "balance_sheet": ("balance sheet", 25), "income_stmt": ("income statement", 21),
    "cashflow": ("cashflow statement", 27), "insider_sentiment": ("insider sentiment", 26),
    "stock_price": ("stock price data", 23), "stock_stats": ("stock stats indicators", 22),
    "news_chunk": ("news chunk", 21), "social_media_chunk": ("post chunk", 22),
}

# User templates: token counts of the static runs between placeholders, laid out like the
# reference templates (placeholder word positions x 1.3). Totals in the comments are the
# static user tokens incl. the 1-token stock.
EXTRACT_HEAD, EXTRACT_MID = 12, 16   # {team}_extraction_fmt: 9 w, doc name+desc, 12 w, {stock}
FUND_EXTRACT_TAIL = (9, 5)           # fundamentals_extraction_fmt: {company_profile}, {doc}
EXTRACT_TAIL = 8                     # market/news/social_extraction_fmt: 6 w, {doc}
SUMMARY_STATIC = {"fundamentals": 95, "market": 87, "news": 101, "social": 93}
# ^ {team}_summary_fmt, 81/68/81/75 w; summary statics 300/897/278/323 (profile) - system - 5
SUMMARY_LAYOUT = {  # static run after {stock}, run between document slots
    "fundamentals": (10, 4), "market": (44, 5), "news": (45, 3), "social": (45, 3)}


def _llm(wf: Workflow, name: str, agent: str, system: str, user: Parts,
         prof: OutputProfile = FULL) -> LLMOp:
    return wf.llm([("system", system), ("user", user)], name=name, agent=agent,
                  sampling=SAMPLING, profile=prof)


def _system(key: str, title: str) -> str:
    return static_text(f"{NAME}/system/{key}", SYSTEM[key], title) + "\n"


def _text(key: str, layout: Layout) -> Parts:
    """A user template: synthetic static runs (keyed by `key` and position) of the given
    token counts, with the message's other parts (ops, labels) in between."""
    parts: Parts = []
    for i, item in enumerate(layout):
        if isinstance(item, int):
            parts.append(static_text(f"{NAME}/{key}/{i}", item) + "\n")
        else:
            parts.append(item)
    return parts


def _transcript(rounds: Sequence[Sequence[tuple[str, Op]]]) -> Parts:
    """A debate transcript, round by round (the reference's LambdaOp, written inline)."""
    return [p for turns in rounds for label, op in turns for p in (f"\n{label} ", op, "\n")]


def _analyst(wf: Workflow, team: str, agent: str, docs: tuple[str, ...], stock: Op,
             company: Op | None = None) -> LLMOp:
    """One analyst team (helium.py::_summarize_documents, _aggregate_summaries)."""
    system = _system(team, f"You are the {team} analyst of a trading firm.")
    notes = []
    for doc in docs:
        kind = doc.rstrip("_0123456789")
        name, desc = DOC_DESC[kind]
        user = [static_text(f"{NAME}/extract/head", EXTRACT_HEAD) + "\n",
                static_text(f"{NAME}/extract/{kind}", desc, name) + "\n",
                static_text(f"{NAME}/extract/mid", EXTRACT_MID) + "\n", stock,
                *(_text(f"{team}/extract", [FUND_EXTRACT_TAIL[0], company,
                                            FUND_EXTRACT_TAIL[1], wf.input(doc)])
                  if company is not None else
                  _text("extract/tail", [EXTRACT_TAIL, wf.input(doc)]))]
        notes.append(_llm(wf, f"{team}/{doc}", agent, system, user))
    # {team}_summary_fmt: {stock}, [{company_profile}], one slot per document, then the
    # instructions; the last static run makes the total SUMMARY_STATIC[team] (stock incl.)
    head, gap = SUMMARY_LAYOUT[team]
    layout: list[int | str | Op] = [5, stock, head]
    if company is not None:
        layout += [company, 42]
    for i, op in enumerate(notes):
        layout += [op, gap] if i < len(notes) - 1 else [op]
    layout.append(SUMMARY_STATIC[team] - 1 - sum(x for x in layout if isinstance(x, int)))
    return _llm(wf, f"{team}/summary", agent, system, _text(f"{team}/summary", layout))


def _reports_layout(stock: Op, reports: dict[str, LLMOp]) -> list[int | str | Op]:
    """{stock} and the four reports in the reference's order (fundamentals, social,
    market, news; researcher_first_round_fmt / risk_analyst_first_round_fmt)."""
    return [6, stock, 13, reports["fundamentals"], 4, reports["social"], 4,
            reports["market"], 3, reports["news"]]


def _research(wf: Workflow, stock: Op, reports: dict[str, LLMOp], rounds: int) -> LLMOp:
    """Bull/bear debate and the research manager (helium.py::researcher_debate)."""
    # researcher_first_round_fmt, 55 w: static 80 (bull r1 2313 = 5 + 180 + 80 + 4 x 512)
    first = _text("research/first_round", [*_reports_layout(stock, reports), 49])
    sides = {side: _llm(wf, f"research/{side}1", f"{side}_researcher",
                        _system(side, f"You are the {side} researcher."), first)
             for side in ("bull", "bear")}
    log = [[("**Bull Researcher:**", sides["bull"]), ("**Bear Researcher:**", sides["bear"])]]
    for r in range(2, rounds + 1):
        # researcher_subsequent_round_fmt, 16 w {other_response}: 27 tokens
        # (bull r2 3368 = r1 2313 + own answer 514 + user 2 + 27 + 512)
        other = {"bull": sides["bear"], "bear": sides["bull"]}
        sides = {side: wf.llm([*history(own), ("user", _text("research/subsequent_round",
                                                              [9, other[side], 18]))],
                              name=f"research/{side}{r}", agent=f"{side}_researcher",
                              sampling=SAMPLING, profile=FULL)
                 for side, own in sides.items()}
        log.append([("**Bull Researcher:**", sides["bull"]),
                    ("**Bear Researcher:**", sides["bear"])])
    # researcher_manager_user_prompt_fmt, 15 w {stock} {debate}: static 49 at R=2
    # (manager 2288 = 5 + 186 + 49 + 4 x 512)
    return _llm(wf, "research/manager", "research_manager",
                _system("research_manager", "You are the research manager."),
                _text("research/manager", [6, stock, 33, *_transcript(log), 1]))


def _chain(wf: Workflow, b: int, stock: Op, reports: dict[str, LLMOp], plan: LLMOp,
           rounds: int) -> LLMOp:
    """Chain `b` (helium.py::trader_analyst_chain): trader, risk debate, risk judge."""
    persona = PERSONAS[b % len(PERSONAS)]
    who = f"{persona}_{b // len(PERSONAS) + 1}"
    # trader_user_prompt_fmt, 73 w {stock} {investment_plan}: static 96
    trader = _llm(wf, f"desk{b + 1}/trader", f"trader_{who}",
                  _system(persona, f"You are a {persona.replace('_', ' ')}."),
                  _text("trader/user", [23, stock, 21, plan, 51]),
                  ARBITRAGEUR if persona == "arbitrageur" else FULL)
    # risk_analyst_first_round_fmt, 91 w, one text for all three roles: static 130
    # (risky r1 2820 = 5 + 125 + 130 + 4 x 512 + trader 512)
    first = _text("risk/first_round", [*_reports_layout(stock, reports), 7, trader, 92])
    ops = {role: _llm(wf, f"desk{b + 1}/{role}1", f"{role}_analyst_{who}",
                      _system(role, f"You are the {role} risk analyst."), first)
           for role in RISK_ROLES}
    log = [[(f"**{role.capitalize()} Risk Analyst:**", ops[role]) for role in RISK_ROLES]]
    for r in range(2, rounds + 1):
        # risk_analyst_subsequent_round_fmt, 31 w {risky} {safe} {neutral}: 49 tokens
        # (risky r2 4921 = r1 2820 + own answer 514 + user 2 + 49 + 3 x 512)
        user = _text("risk/subsequent_round",
                     [14, ops["risky"], 4, ops["safe"], 4, ops["neutral"], 27])
        ops = {role: wf.llm([*history(own), ("user", user)], name=f"desk{b + 1}/{role}{r}",
                            agent=f"{role}_analyst_{who}", sampling=SAMPLING, profile=FULL)
               for role, own in ops.items()}
        log.append([(f"**{role.capitalize()} Risk Analyst:**", ops[role])
                    for role in RISK_ROLES])
    # judge_user_prompt_fmt, 39 w {stock} {debate}: static 107 at R=2
    # (judge 3366 = 5 + 182 + 107 + 6 x 512)
    return _llm(wf, f"desk{b + 1}/judge", f"judge_{who}",
                _system("judge", "You are the risk management judge."),
                _text("risk/judge", [6, stock, 14, *_transcript(log), 68]))


def _build(wf: Workflow, branches: int, rounds: int) -> LLMOp:
    stock = wf.input("stock")
    company = wf.input("company_profile")
    reports = {
        "fundamentals": _analyst(wf, "fundamentals", "fundamentals_analyst",
                                 data.FUNDAMENTALS, stock, company),
        "market": _analyst(wf, "market", "market_analyst", data.MARKET, stock),
        "news": _analyst(wf, "news", "news_analyst", data.NEWS, stock),
        "social": _analyst(wf, "social", "social_media_analyst", data.SOCIAL, stock),
    }
    plan = _research(wf, stock, reports, rounds)
    judges = [_chain(wf, b, stock, reports, plan, rounds) for b in range(branches)]
    # fund_manager_user_prompt_fmt, 87 w {stock} + one slot per chain: static 120 at B=8
    # (fund manager 4387 = 5 + 166 + 120 + 8 x 512)
    slots = [p for b, op in enumerate(judges)
             for p in (f"\n{LABELS[b % len(LABELS)]} ", op, "\n")]
    return _llm(wf, "fund_manager", "fund_manager",
                _system("fund_manager", "You are the fund manager."),
                _text("fund_manager", [6, stock, 25, *slots, 74]))


def trading(*, batch_size: int, seed: int = 0, branches: int = 8, rounds: int = 2,
            day: str = "2024-06-02") -> BoundGraph:
    """The Trading workflow over `batch_size` synthetic stocks on `day`."""
    wf = Workflow(NAME)
    check_int(wf.name, "batch_size", batch_size)
    check_int(wf.name, "branches", branches)
    check_int(wf.name, "rounds", rounds)
    day = data.check_day(day)
    wf.output("investment_recommendation", _build(wf, branches, rounds))
    return finish(wf, data.stock_bindings(batch_size, seed, day), batch_size=batch_size,
                  seed=seed, params={"branches": branches, "rounds": rounds, "day": day})
