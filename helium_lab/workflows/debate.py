"""Debate (PAPER.md §7.2 W2, Du et al.; §12.1): agents with distinct roles answer, then over
further rounds each revises its answer after reading the others'.

Round 1 of agent ``a``, laid out as the reference program builds it (helium_demo
`bench_programs/debate/base.py`, `build_user_prompt`; `debate/helium.py`): a system prompt
every agent shares ("You are a helpful AI Assistant."), then a user turn of the [context
and] question with its answering instructions, then the agent's role as a suffix ("Respond
as if you are {role}."). So the agents of one question share everything but the role.
Round ``r > 1`` continues the agent's own conversation (`history` of its previous round, so
the earlier prompt and answer are a prefix) with a user turn listing the other agents'
previous answers.

* ``debate(agents=3, rounds=2)``: MMLU, input ``question``; 6 LLM ops per query.
* ``debate_tatqa(agents=3, rounds=2, questions=6)``: per TAT-QA context, `questions`
  independent debates; inputs ``context``, ``q1..q6``; 36 LLM ops per query.

Both take an optional ``dataset_path``. Token sizes (§12.3): MMLU prompts ≈642 (round 1
≈160, round 2 ≈1.1k), outputs ≈329; TAT-QA prompts ≈1175, outputs ≈390. The system prompt
and the role suffix take the reference's sizes (≈8 tokens each); the answering
instructions take the rest of the static text, so round-1 prompts keep the lengths above.
"""

from __future__ import annotations

from helium_lab.dsl import BoundGraph, LLMOp, Op, Workflow, history
from helium_lab.workflows import sources
from helium_lab.workflows.base import (
    SAMPLING,
    Message,
    check_int,
    finish,
    labelled,
    names,
    profile,
    slug,
)
from helium_lab.workflows.text import static_text

ROLES = ("scholar", "skeptic", "pragmatist", "scientist", "teacher", "historian")


def _round(wf: Workflow, prefix: str, r: int, prev: list[LLMOp], roles: list[str],
           oprof: tuple[float, float]) -> list[LLMOp]:
    """Round `r` > 1 of every agent, each continuing its own round `r - 1` conversation."""
    instr = static_text(f"{wf.name}/revise", 30, "Considering these answers, revise yours.")
    out = []
    for a, role in enumerate(roles):
        others = labelled([(f"Agent {b + 1}", op) for b, op in enumerate(prev) if b != a])
        msgs: list[Message] = [
            *history(prev[a]),
            ("user", ["These are the other agents' answers:", *others, "\n", instr])]
        out.append(wf.llm(msgs, name=f"{prefix}r{r}/{slug(role)}", agent=slug(role),
                          sampling=SAMPLING,
                          profile=profile(*oprof)))
    return out


SYSTEM_TOKENS = ROLE_TOKENS = 8  # the reference's system prompt and role suffix


def _first_round(wf: Workflow, prefix: str, roles: list[str], question: list[str | Op],
                 instr_tokens: int, oprof: tuple[float, float]) -> list[LLMOp]:
    system = static_text(f"{wf.name}/system", SYSTEM_TOKENS, "You are a helpful AI Assistant.")
    instr = static_text(f"{wf.name}/answer", instr_tokens,
                        "Explain your reasoning, then answer.")
    out = []
    for role in roles:
        suffix = static_text(f"{wf.name}/role/{role}", ROLE_TOKENS,
                             f"Respond as if you are a {role}.")
        out.append(wf.llm([("system", system),
                           ("user", [*question, "\n", instr, "\n", suffix])],
                          name=f"{prefix}r1/{slug(role)}", agent=slug(role),
                          sampling=SAMPLING,
                          profile=profile(*oprof)))
    return out


def _debate(wf: Workflow, prefix: str, agents: int, rounds: int, question: list[str | Op],
            static_tokens: int, oprof: tuple[float, float]) -> list[LLMOp]:
    """All rounds of one debate; returns the final round's answers. `static_tokens`: the
    static text of a round-1 prompt (system, instructions and role together)."""
    roles = names(ROLES, agents, "agent")
    instr_tokens = static_tokens - SYSTEM_TOKENS - ROLE_TOKENS
    ops = _first_round(wf, prefix, roles, question, instr_tokens, oprof)
    for r in range(2, rounds + 1):
        ops = _round(wf, prefix, r, ops, roles, oprof)
    return ops


def debate(*, batch_size: int, seed: int = 0, agents: int = 3, rounds: int = 2,
           dataset_path: str | None = None) -> BoundGraph:
    """Multi-agent debate over MMLU questions."""
    wf = Workflow("debate")
    check_int(wf.name, "batch_size", batch_size)
    check_int(wf.name, "agents", agents)
    check_int(wf.name, "rounds", rounds)
    q: list[str | Op] = ["Question:\n", wf.input("question")]
    for a, op in enumerate(_debate(wf, "", agents, rounds, q, 80, (325, 80))):
        wf.output(f"answer{a + 1}", op)
    questions = sources.mmlu_questions(wf.name, batch_size, seed, dataset_path)
    return finish(wf, {"question": questions}, batch_size=batch_size, seed=seed,
                  params={"agents": agents, "rounds": rounds, "dataset_path": dataset_path})


def debate_tatqa(*, batch_size: int, seed: int = 0, agents: int = 3, rounds: int = 2,
                 questions: int = 6, dataset_path: str | None = None) -> BoundGraph:
    """Multi-agent debate over each question of TAT-QA contexts."""
    wf = Workflow("debate_tatqa")
    check_int(wf.name, "batch_size", batch_size)
    check_int(wf.name, "agents", agents)
    check_int(wf.name, "rounds", rounds)
    check_int(wf.name, "questions", questions)
    context = wf.input("context")
    for k in range(1, questions + 1):
        q: list[str | Op] = ["Context:\n", context, "\nQuestion:\n", wf.input(f"q{k}")]
        for a, op in enumerate(_debate(wf, f"q{k}/", agents, rounds, q, 110, (390, 50))):
            wf.output(f"answer{k}.{a + 1}", op)
    rows = sources.tatqa_rows(wf.name, batch_size, seed, questions, dataset_path)
    return finish(wf, sources.tatqa_bindings(rows, questions), batch_size=batch_size, seed=seed,
                  params={"agents": agents, "rounds": rounds, "questions": questions,
                          "dataset_path": dataset_path})
