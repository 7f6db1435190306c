"""Shared builders for planner tests: the paper's worked examples as tiny workflows."""

from __future__ import annotations

from helium_lab.dsl import Graph, Workflow
from helium_lab.tokenizer import synthetic_text


def fig4_workflow() -> Graph:
    """PAPER.md Fig. 4: Op1 (Agent 1), Op2 and Op3 (Agent 2; Op3 reviews Op1's answer)."""
    wf = Workflow("fig4")
    q = wf.input("question")
    agent1 = "You are Agent 1. " + synthetic_text("agent1", 300)
    agent2 = "You are Agent 2. " + synthetic_text("agent2", 300)
    op1 = wf.llm([("system", agent1), ("user", wf.fmt("{q} Please answer", q=q))], name="Op1")
    op2 = wf.llm([("system", agent2), ("user", wf.fmt("{q} Please answer", q=q))], name="Op2")
    op3 = wf.llm([("system", agent2),
                  ("user", wf.fmt("{q} Please review {a}", q=q, a=op1))], name="Op3")
    wf.output("answer1", op3)
    wf.output("answer2", op2)
    return wf.build()


def fig13_workflow() -> Graph:
    """PAPER.md Fig. 13: the Trading analysts. Market 1, 2 -> 3 and News 4, 5 -> 6, plus the
    fundamentals and social-media analysts, whose inputs do not change across days."""
    wf = Workflow("fig13")
    data = wf.input("data")
    price, stats = wf.input("price"), wf.input("stats")
    news = [wf.input(f"news{i}") for i in (1, 2)]
    profile, posts = wf.input("profile"), wf.input("posts")
    market = "You are the market analyst. " + synthetic_text("market", 400)
    m1 = wf.llm([("system", market), ("user", [data, "\nPrice history:\n", price])], name="1")
    m2 = wf.llm([("system", market), ("user", [data, "\nIndicators:\n", stats])], name="2")
    m3 = wf.llm([("system", market), ("user", [m1, "\n", m2, "\nWrite the market report."])],
                name="3")
    news_sys = "You are the news analyst. " + synthetic_text("news", 400)
    n4 = wf.llm([("system", news_sys), ("user", ["Summarize batch one:\n", news[0]])], name="4")
    n5 = wf.llm([("system", news_sys), ("user", ["Summarize batch two:\n", news[1]])], name="5")
    n6 = wf.llm([("system", news_sys), ("user", ["Merge the summaries:\n", n4, "\n", n5])],
                name="6")
    fund = "You are the fundamentals analyst. " + synthetic_text("fund", 300)
    f = wf.llm([("system", fund), ("user", profile)], name="fundamentals")
    social = "You are the social media analyst. " + synthetic_text("social", 300)
    s = wf.llm([("system", social), ("user", posts)], name="social")
    wf.output("market", m3)
    wf.output("news", n6)
    wf.output("fundamentals", f)
    wf.output("social", s)
    return wf.build()


def fig13_batch(day: int, size: int = 4) -> dict[str, list[str]]:
    """Per-stock inputs of one day; profile and posts are the same on every day."""
    def field(name: str, n: int, per_day: bool) -> list[str]:
        return [synthetic_text(f"{name}:{q}:{day if per_day else 0}", n) for q in range(size)]

    return {"data": field("data", 200, True), "price": field("price", 300, True),
            "stats": field("stats", 150, True), "news1": field("news1", 400, True),
            "news2": field("news2", 400, True), "profile": field("profile", 500, False),
            "posts": field("posts", 300, False)}
