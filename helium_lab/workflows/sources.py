"""Per-query data of the primitive workloads: synthetic by default, a local dataset on request.

Each function returns one row per query. Synthetic rows come from `QueryText(workflow, seed)`;
with `dataset_path` the rows are read by `datasets.py` and shuffled with seed ``42 + seed``
(the reference's 42 at the default seed 0).
"""

from __future__ import annotations

from helium_lab.workflows import datasets
from helium_lab.workflows.text import QueryText

SHUFFLE_SEED = 42


def mmlu_questions(workflow: str, batch_size: int, seed: int,
                   dataset_path: str | None) -> list[str]:
    """One multiple-choice question per query."""
    if dataset_path is not None:
        return datasets.load_mmlu(dataset_path, batch_size, SHUFFLE_SEED + seed)
    gen = QueryText(workflow, seed)
    return [gen.mmlu_question(i) for i in range(batch_size)]


def tatqa_rows(workflow: str, batch_size: int, seed: int, questions: int,
               dataset_path: str | None) -> list[tuple[str, tuple[str, ...]]]:
    """One (context, `questions` questions) pair per query."""
    if dataset_path is not None:
        return datasets.load_tatqa(dataset_path, batch_size, questions, SHUFFLE_SEED + seed)
    gen = QueryText(workflow, seed)
    return [(gen.tatqa_context(i), tuple(gen.tatqa_question(i, k) for k in range(questions)))
            for i in range(batch_size)]


def tatqa_bindings(rows: list[tuple[str, tuple[str, ...]]], questions: int) -> dict[str, list[str]]:
    """Inputs ``context`` and ``q1..q<questions>`` from `tatqa_rows`."""
    out = {"context": [ctx for ctx, _ in rows]}
    for k in range(questions):
        out[f"q{k + 1}"] = [qs[k] for _, qs in rows]
    return out


def amazon_chunks(workflow: str, batch_size: int, seed: int, chunks: int, per_chunk: int,
                  dataset_path: str | None) -> dict[str, list[str]]:
    """Inputs ``chunk1..chunk<chunks>``: `per_chunk` reviews each, per item."""
    if dataset_path is not None:
        items = datasets.load_amazon(dataset_path, batch_size, chunks, per_chunk,
                                     SHUFFLE_SEED + seed)
    else:
        gen = QueryText(workflow, seed)
        items = [tuple(gen.review_chunk(i, c, per_chunk) for c in range(chunks))
                 for i in range(batch_size)]
    return {f"chunk{c + 1}": [item[c] for item in items] for c in range(chunks)}


def amazon_items(workflow: str, batch_size: int, seed: int, chunks: int, per_chunk: int,
                 dataset_path: str | None) -> dict[str, list[str]]:
    """`amazon_chunks` plus input ``item``: each item's product description in the
    reference's template. A reviews file carries no product metadata, so for a dataset the
    description names the product id and prints its other fields as N/A (as the reference
    prints a missing field)."""
    if dataset_path is None:
        gen = QueryText(workflow, seed)
        out = {"item": [gen.product_description(i) for i in range(batch_size)]}
        return {**out, **amazon_chunks(workflow, batch_size, seed, chunks, per_chunk, None)}
    items = datasets.load_amazon_items(dataset_path, batch_size, chunks, per_chunk,
                                       SHUFFLE_SEED + seed)
    na = ("Category", "Average Rating", "Rating Number", "Features", "Description", "Price",
          "Store", "Categories", "Details")
    out = {"item": ["\n".join([f"- Title: {asin}", *(f"- {k}: N/A" for k in na)])
                    for asin, _ in items]}
    for c in range(chunks):
        out[f"chunk{c + 1}"] = [item_chunks[c] for _, item_chunks in items]
    return out
