"""MapRed (PAPER.md §7.2 W1, §12.1): experts answer a question in parallel, a summarizer
combines their answers.

* ``mapred_mmlu(experts=14, roles=7)``: per question, `experts` experts then 1 summarizer
  (15 LLM ops). Expert ``i`` plays role ``i % roles``; the role suffix comes *after* the
  question under a shared system prompt, so the two experts of a role are identical ops that
  CSE can merge. Input ``question``; optional ``dataset_path`` (MMLU CSVs).
* ``mapred_tatqa(experts=7, questions=6)``: per context, `questions` questions, each
  `experts` role experts then 1 summarizer (48 LLM ops). Inputs ``context``, ``q1..q6``;
  optional ``dataset_path`` (TAT-QA JSON).

Token sizes follow §12.3: MMLU prompts ≈446 (experts ≈165, summarizer ≈4.2k), outputs ≈286;
TAT-QA prompts ≈931 (experts ≈575, summarizers ≈3.2k), outputs ≈374.
"""

from __future__ import annotations

from helium_lab.dsl import BoundGraph, LLMOp, Op, Workflow
from helium_lab.workflows import sources
from helium_lab.workflows.base import SAMPLING, check_int, finish, labelled, names, profile
from helium_lab.workflows.text import static_text

MMLU_ROLES = ("historian", "mathematician", "physicist", "biologist", "lawyer", "economist",
              "philosopher")
TATQA_ROLES = ("financial analyst", "accountant", "auditor", "data analyst", "economist",
               "tax advisor", "investment banker")


def _experts(wf: Workflow, prefix: str, question: list[str | Op], roles: list[str],
             n: int, role_tokens: int, oprof: tuple[float, float]) -> list[LLMOp]:
    """`n` experts over one question; expert i takes role i % len(roles) as a suffix."""
    system = static_text(f"{wf.name}/system", 30, "You are an expert. Answer the question.")
    out = []
    for i in range(n):
        role = roles[i % len(roles)]
        suffix = static_text(f"{wf.name}/role/{role}", role_tokens, f"Answer as a {role}.")
        out.append(wf.llm([("system", system), ("user", [*question, "\n", suffix])],
                          name=f"{prefix}expert{i + 1}", agent=f"expert{i + 1}",
                          sampling=SAMPLING,
                          profile=profile(*oprof)))
    return out


def _summarizer(wf: Workflow, name: str, question: list[str | Op],
                experts: list[LLMOp]) -> LLMOp:
    system = static_text(f"{wf.name}/summarizer", 60, "You summarize the experts' answers.")
    instr = static_text(f"{wf.name}/summarize", 25, "Give the single best final answer.")
    answers = labelled([(f"Expert {i + 1}", e) for i, e in enumerate(experts)])
    return wf.llm([("system", system), ("user", [*question, "\nExpert answers:", *answers,
                                                  instr])],
                  name=name, agent="summarizer", sampling=SAMPLING, profile=profile(335, 100))


def mapred_mmlu(*, batch_size: int, seed: int = 0, experts: int = 14, roles: int = 7,
                dataset_path: str | None = None) -> BoundGraph:
    """MapRed over MMLU questions: `experts` role experts -> summarizer."""
    wf = Workflow("mapred_mmlu")
    check_int(wf.name, "batch_size", batch_size)
    check_int(wf.name, "experts", experts)
    check_int(wf.name, "roles", roles)
    q: list[str | Op] = ["Question:\n", wf.input("question")]
    team = _experts(wf, "", q, names(MMLU_ROLES, roles, "expert"), experts, 45, (290, 120))
    wf.output("answer", _summarizer(wf, "summarizer", q, team))
    questions = sources.mmlu_questions(wf.name, batch_size, seed, dataset_path)
    return finish(wf, {"question": questions}, batch_size=batch_size, seed=seed,
                  params={"experts": experts, "roles": roles, "dataset_path": dataset_path})


def mapred_tatqa(*, batch_size: int, seed: int = 0, experts: int = 7, questions: int = 6,
                 dataset_path: str | None = None) -> BoundGraph:
    """MapRed over TAT-QA contexts: per question, `experts` role experts -> summarizer."""
    wf = Workflow("mapred_tatqa")
    check_int(wf.name, "batch_size", batch_size)
    check_int(wf.name, "experts", experts)
    check_int(wf.name, "questions", questions)
    context = wf.input("context")
    roles = names(TATQA_ROLES, experts, "expert")
    for k in range(1, questions + 1):
        q: list[str | Op] = ["Context:\n", context, "\nQuestion:\n", wf.input(f"q{k}")]
        team = _experts(wf, f"q{k}/", q, roles, experts, 100, (380, 120))
        wf.output(f"answer{k}", _summarizer(wf, f"q{k}/summarizer", q, team))
    rows = sources.tatqa_rows(wf.name, batch_size, seed, questions, dataset_path)
    return finish(wf, sources.tatqa_bindings(rows, questions), batch_size=batch_size, seed=seed,
                  params={"experts": experts, "questions": questions,
                          "dataset_path": dataset_path})
