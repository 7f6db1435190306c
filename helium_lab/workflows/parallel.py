"""Parallel (PAPER.md §7.2 W5, §12.1): role experts each extract from every review chunk and
summarize their extractions; a writer combines the experts' summaries.

Per Amazon item: ``experts * (chunks + 1) + 1`` LLM ops (50 with ``experts=7, chunks=6``).
Prompts laid out as the reference program builds them (helium_demo
`bench_programs/parallel/helium.py`, `prompts/amazon.yaml`): an expert's ops share its role
system prompt; each user turn opens with its static instructions, then the product
description (input ``item``), then the op's own data (a review chunk, the extractions, the
summaries). So an expert's extractions of one item share everything up to the chunk. Inputs
``item`` and ``chunk1..chunk<chunks>``; optional ``dataset_path`` (Amazon Reviews JSONL).
Token sizes (§12.3): prompts ≈1858 [1475, 4458], outputs ≈447 [415, 512]; the product
description (≈170 tokens) is taken out of the static system prompts, so prompts keep
their lengths.
"""

from __future__ import annotations

from helium_lab.dsl import BoundGraph, InputOp, LLMOp, Workflow
from helium_lab.workflows import sources
from helium_lab.workflows.base import SAMPLING, check_int, finish, labelled, names, profile
from helium_lab.workflows.text import static_text

NAME = "parallel"
ROLES = ("product quality analyst", "customer sentiment analyst", "pricing analyst",
         "safety reviewer", "usability researcher", "market researcher", "support specialist")


def _expert(wf: Workflow, e: int, role: str, item: InputOp, chunks: list[InputOp]) -> LLMOp:
    """Expert `e`: one extraction per chunk, then a summary of them."""
    system = static_text(f"{NAME}/role/{role}", 480, f"You are a {role} reading reviews.")
    extract = static_text(f"{NAME}/extract", 30, "Extract the points relevant to your role.")
    notes = [wf.llm([("system", system), ("user", [extract, "\nProduct description:\n", item,
                                                   "\nCustomer reviews:\n", chunk])],
                    name=f"expert{e}/extract{c + 1}", agent=f"expert{e}", sampling=SAMPLING,
                    profile=profile(445, 65))
             for c, chunk in enumerate(chunks)]
    summarize = static_text(f"{NAME}/summarize", 40, "Summarize your extracted points.")
    parts = labelled([(f"Notes {c + 1}", n) for c, n in enumerate(notes)])
    return wf.llm([("system", system), ("user", [summarize, "\nProduct description:\n", item,
                                                 "\nExtracted notes:", *parts])],
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
    item = wf.input("item")
    inputs = [wf.input(f"chunk{c}") for c in range(1, chunks + 1)]
    roles = names(ROLES, experts, "reviewer")
    summaries = [(role, _expert(wf, e + 1, role, item, inputs)) for e, role in enumerate(roles)]
    system = static_text(f"{NAME}/writer", 130, "You write the final product report.")
    instr = static_text(f"{NAME}/write", 40, "Write one coherent report from the summaries.")
    writer = wf.llm([("system", system),
                     ("user", [instr, "\nProduct description:\n", item, "\nExpert summaries:",
                               *labelled(summaries)])],
                    name="writer", agent="writer", sampling=SAMPLING, profile=profile(500, 12))
    wf.output("report", writer)
    bindings = sources.amazon_items(wf.name, batch_size, seed, chunks, reviews_per_chunk,
                                    dataset_path)
    return finish(wf, bindings, batch_size=batch_size, seed=seed,
                  params={"experts": experts, "chunks": chunks,
                          "reviews_per_chunk": reviews_per_chunk, "dataset_path": dataset_path})
