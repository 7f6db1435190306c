"""Iterative (PAPER.md §7.2 W4, LangChain "refine"; §12.1): a chain of `chunks` summary calls.

Call 1 summarizes review chunk 1; call ``i > 1`` refines summary ``i - 1`` with chunk ``i``.
Per Amazon item: inputs ``chunk1..chunk<chunks>``, each `reviews_per_chunk` reviews as JSON
lines; ``chunks=6`` gives 6 LLM ops. Optional ``dataset_path`` (Amazon Reviews JSONL).

Token sizes (§12.3): prompts ≈1282 [1082, 1421], outputs ≈318.
"""

from __future__ import annotations

from helium_lab.dsl import BoundGraph, LLMOp, Op, Workflow
from helium_lab.workflows import sources
from helium_lab.workflows.base import SAMPLING, check_int, finish, profile
from helium_lab.workflows.text import static_text

NAME = "iterative"


def _step(wf: Workflow, i: int, chunk: Op, prev: LLMOp | None) -> LLMOp:
    """Summary `i` (1-based): of `chunk` alone, or refining `prev` with it."""
    system = static_text(f"{NAME}/system", 150, "You summarize customer reviews of a product.")
    if prev is None:
        instr = static_text(f"{NAME}/summarize", 20, "Write a concise summary.")
        user: list[str | Op] = ["Reviews:\n", chunk, "\n", instr]
    else:
        instr = static_text(f"{NAME}/refine", 25, "Refine the summary with the new reviews.")
        user = ["Current summary:\n", prev, "\nNew reviews:\n", chunk, "\n", instr]
    return wf.llm([("system", system), ("user", user)], name=f"summary{i}",
                  agent="summarizer",
                  sampling=SAMPLING, profile=profile(318, 100))


def iterative(*, batch_size: int, seed: int = 0, chunks: int = 6, reviews_per_chunk: int = 10,
              dataset_path: str | None = None) -> BoundGraph:
    """Refine-style summarization of each Amazon item's review chunks."""
    wf = Workflow(NAME)
    check_int(wf.name, "batch_size", batch_size)
    check_int(wf.name, "chunks", chunks)
    check_int(wf.name, "reviews_per_chunk", reviews_per_chunk)
    summary = _step(wf, 1, wf.input("chunk1"), None)
    for i in range(2, chunks + 1):
        summary = _step(wf, i, wf.input(f"chunk{i}"), summary)
    wf.output("summary", summary)
    bindings = sources.amazon_chunks(wf.name, batch_size, seed, chunks, reviews_per_chunk,
                                     dataset_path)
    return finish(wf, bindings, batch_size=batch_size, seed=seed,
                  params={"chunks": chunks, "reviews_per_chunk": reviews_per_chunk,
                          "dataset_path": dataset_path})
