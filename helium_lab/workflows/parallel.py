"""Parallel (PAPER.md §7.2 W5, §12.1): role experts each extract from every review chunk and
summarize their extractions; a writer combines the experts' summaries.

Per Amazon item: ``experts * (chunks + 1) + 1`` LLM ops (50 with ``experts=7, chunks=6``).
An expert's extractions and summary share its role system prompt. Inputs
``chunk1..chunk<chunks>``; optional ``dataset_path`` (Amazon Reviews JSONL).

Token sizes (§12.3): prompts ≈1858 [1475, 4458], outputs ≈447 [415, 512].
"""

from __future__ import annotations

from helium_lab.dsl import BoundGraph, InputOp, LLMOp, Workflow
from helium_lab.workflows import sources
from helium_lab.workflows.base import SAMPLING, check_int, finish, labelled, names, profile
from helium_lab.workflows.text import static_text

NAME = "parallel"
ROLES = ("product quality analyst", "customer sentiment analyst", "pricing analyst",
         "safety reviewer", "usability researcher", "market researcher", "support specialist")


def _expert(wf: Workflow, e: int, role: str, chunks: list[InputOp]) -> LLMOp:
    """Expert `e`: one extraction per chunk, then a summary of them."""
    system = static_text(f"{NAME}/role/{role}", 650, f"You are a {role} reading reviews.")
    extract = static_text(f"{NAME}/extract", 30, "Extract the points relevant to your role.")
    notes = [wf.llm([("system", system), ("user", ["Reviews:\n", chunk, "\n", extract])],
                    name=f"expert{e}/extract{c + 1}", agent=f"expert{e}", sampling=SAMPLING,
                    profile=profile(445, 65))
             for c, chunk in enumerate(chunks)]
    summarize = static_text(f"{NAME}/summarize", 40, "Summarize your extracted points.")
    parts = labelled([(f"Notes {c + 1}", n) for c, n in enumerate(notes)])
    return wf.llm([("system", system), ("user", ["Extracted notes:", *parts, summarize])],
                  name=f"expert{e}/summary", agent=f"expert{e}", sampling=SAMPLING,
                  profile=profile(450, 60))


def parallel(*, batch_size: int, seed: int = 0, experts: int = 7, chunks: int = 6,
             reviews_per_chunk: int = 10, dataset_path: str | None = None) -> BoundGraph:
    """Parallel expert extraction and summary over each Amazon item's reviews."""
    wf = Workflow(NAME)
    check_int(wf.name, "batch_size", batch_size)
    check_int(wf.name, "experts", experts)
    check_int(wf.name, "chunks", chunks)
    check_int(wf.name, "reviews_per_chunk", reviews_per_chunk)
    inputs = [wf.input(f"chunk{c}") for c in range(1, chunks + 1)]
    roles = names(ROLES, experts, "reviewer")
    summaries = [(role, _expert(wf, e + 1, role, inputs)) for e, role in enumerate(roles)]
    system = static_text(f"{NAME}/writer", 300, "You write the final product report.")
    instr = static_text(f"{NAME}/write", 40, "Write one coherent report from the summaries.")
    writer = wf.llm([("system", system),
                     ("user", ["Expert summaries:", *labelled(summaries), instr])],
                    name="writer", agent="writer", sampling=SAMPLING, profile=profile(500, 12))
    wf.output("report", writer)
    bindings = sources.amazon_chunks(wf.name, batch_size, seed, chunks, reviews_per_chunk,
                                     dataset_path)
    return finish(wf, bindings, batch_size=batch_size, seed=seed,
                  params={"experts": experts, "chunks": chunks,
                          "reviews_per_chunk": reviews_per_chunk, "dataset_path": dataset_path})
