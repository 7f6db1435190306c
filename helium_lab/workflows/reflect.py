"""Reflect (PAPER.md §7.2 W3, §12.1): an analyst answers, critics review, the analyst revises.

Per TAT-QA question, a chain of ``critics + 2`` LLM ops:

    analyst -> extraction critic -> calculation critic -> analyst (final)

The extraction critic reads the context, question and the analyst's answer; each further
critic continues the previous critic's conversation (`history`), and the final analyst turn
continues the analyst's own conversation with the critiques appended. With the defaults
``critics=2, questions=6`` a context has 24 LLM ops. Inputs ``context``, ``q1..q6``;
optional ``dataset_path`` (TAT-QA JSON).

Token sizes (§12.3): prompts ≈1048 [725, 1716], outputs ≈257 (the final answer is short).
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

CRITICS = ("extraction", "calculation", "consistency", "units")
NAME = "reflect"


def _analyst(wf: Workflow, prefix: str, question: list[str | Op]) -> LLMOp:
    system = static_text(f"{NAME}/analyst", 220, "You are a financial analyst.")
    instr = static_text(f"{NAME}/analyst/answer", 20, "Extract the figures and answer.")
    return wf.llm([("system", system), ("user", [*question, "\n", instr])],
                  name=f"{prefix}analyst", agent="analyst", sampling=SAMPLING,
                  profile=profile(300, 150))


def _critics(wf: Workflow, prefix: str, question: list[str | Op], answer: LLMOp,
             kinds: list[str]) -> list[LLMOp]:
    """The critic chain: the first reviews `answer`, each next one continues the talk."""
    system = static_text(f"{NAME}/critic", 80, "You are a meticulous reviewer.")
    out: list[LLMOp] = []
    for kind in kinds:
        instr = static_text(f"{NAME}/critic/{kind}", 40, f"Check the {kind} of the answer.")
        msgs: list[Message]
        if out:
            msgs = [*history(out[-1]), ("user", instr)]
        else:
            msgs = [("system", system),
                    ("user", [*question, "\nAnalyst answer:\n", answer, "\n", instr])]
        out.append(wf.llm(msgs, name=f"{prefix}critic/{slug(kind)}",
                          agent=f"critic/{slug(kind)}",
                          sampling=SAMPLING,
                          profile=profile(310, 150)))
    return out


def _final(wf: Workflow, prefix: str, analyst: LLMOp, critics: list[LLMOp],
           kinds: list[str]) -> LLMOp:
    instr = static_text(f"{NAME}/final", 40, "Revise your answer; reply with it only.")
    critiques = labelled([(f"{k} critique", c) for k, c in zip(kinds, critics, strict=True)])
    return wf.llm([*history(analyst), ("user", ["Critiques:", *critiques, instr])],
                  name=f"{prefix}final", agent="analyst", sampling=SAMPLING,
                  profile=profile(96, 32))


def reflect(*, batch_size: int, seed: int = 0, critics: int = 2, questions: int = 6,
            dataset_path: str | None = None) -> BoundGraph:
    """Analyst/critics reflection over each question of TAT-QA contexts."""
    wf = Workflow(NAME)
    check_int(wf.name, "batch_size", batch_size)
    check_int(wf.name, "critics", critics)
    check_int(wf.name, "questions", questions)
    kinds = names(CRITICS, critics, "check")
    context = wf.input("context")
    for k in range(1, questions + 1):
        prefix = f"q{k}/"
        q: list[str | Op] = ["Context:\n", context, "\nQuestion:\n", wf.input(f"q{k}")]
        analyst = _analyst(wf, prefix, q)
        chain = _critics(wf, prefix, q, analyst, kinds)
        wf.output(f"answer{k}", _final(wf, prefix, analyst, chain, kinds))
    rows = sources.tatqa_rows(wf.name, batch_size, seed, questions, dataset_path)
    return finish(wf, sources.tatqa_bindings(rows, questions), batch_size=batch_size, seed=seed,
                  params={"critics": critics, "questions": questions,
                          "dataset_path": dataset_path})
