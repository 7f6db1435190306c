"""Loaders for local copies of the paper's datasets (nothing is ever downloaded).

* MMLU: a directory of the standard test CSVs (``question,A,B,C,D,answer``, no header), or
  one such file. Each question becomes its stem followed by the four lettered options.
* TAT-QA: the official JSON list of ``{table, paragraphs, questions}``. A context is its
  paragraphs (in ``order``) followed by the table as pipe rows; its first `questions`
  questions are used, and contexts with fewer questions are skipped.
* Amazon Reviews 2023: a JSONL of reviews (``parent_asin``, ``title``, ``text``, ``rating``,
  ``helpful_vote``). Items with at least ``chunks * per_chunk`` reviews are kept; their first
  reviews are split into chunks of `per_chunk` JSON lines.

Items are shuffled with `random.Random(shuffle_seed)` (42 in the reference) and the first
`n` are returned. Every error names the file and what is wrong with it.
"""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from helium_lab.errors import ConfigError

TatqaRow = tuple[str, tuple[str, ...]]  # (context, questions)


class DatasetError(ConfigError):
    """A local dataset file is missing, malformed or too small."""


def _take(items: list[Any], n: int, seed: int, path: Path, what: str) -> list[Any]:
    if len(items) < n:
        raise DatasetError(f"{path}: only {len(items)} {what}, but {n} are needed")
    random.Random(seed).shuffle(items)
    return items[:n]


def _csv_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise DatasetError(f"{path}: no such MMLU file or directory")
    files = sorted(path.glob("*.csv"))
    if not files:
        raise DatasetError(f"{path}: no *.csv files (expected MMLU test CSVs)")
    return files


def _mmlu_rows(file: Path) -> list[str]:
    try:
        with file.open(newline="", encoding="utf-8") as fh:
            return _parse_mmlu(file, csv.reader(fh))
    except (UnicodeDecodeError, csv.Error) as e:
        raise DatasetError(f"{file}: not a UTF-8 CSV file ({e})") from None


def _parse_mmlu(file: Path, reader: Iterable[list[str]]) -> list[str]:
    out = []
    for line, row in enumerate(reader, start=1):
        if len(row) != 6:
            raise DatasetError(f"{file}: line {line}: expected 6 columns "
                               f"(question,A,B,C,D,answer), got {len(row)}")
        if row[5].strip() not in ("A", "B", "C", "D"):
            raise DatasetError(f"{file}: line {line}: answer {row[5]!r} is not A-D")
        q, *opts = row[:5]
        out.append("\n".join([q, *(f"{c}) {o}" for c, o in zip("ABCD", opts, strict=True))]))
    return out


def load_mmlu(path: str | Path, n: int, shuffle_seed: int = 42) -> list[str]:
    """`n` MMLU questions (stem and options) from a CSV directory or file."""
    root = Path(path)
    rows = [q for f in _csv_files(root) for q in _mmlu_rows(f)]
    return _take(rows, n, shuffle_seed, root, "MMLU questions")


def _read_json(file: Path) -> Any:
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DatasetError(f"{file}: no such TAT-QA file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DatasetError(f"{file}: not valid JSON (UTF-8) ({e})") from None


def _pipe_table(rows: Any) -> list[str]:
    return ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]


def _tatqa_entry(file: Path, i: int, entry: Any, questions: int) -> TatqaRow | None:
    try:
        paras = sorted(entry["paragraphs"], key=lambda p: p.get("order", 0))
        qs = sorted(entry["questions"], key=lambda q: q.get("order", 0))
        table = entry["table"]["table"]
        text = [p["text"] for p in paras]
        asked = tuple(q["question"] for q in qs[:questions])
    except (KeyError, TypeError, AttributeError) as e:
        raise DatasetError(f"{file}: entry {i}: expected {{table: {{table}}, paragraphs: "
                           f"[{{text}}], questions: [{{question}}]}}, missing/bad {e}") from None
    if len(asked) < questions:
        return None
    return "\n".join([*text, *_pipe_table(table)]), asked


def load_tatqa(path: str | Path, n: int, questions: int,
               shuffle_seed: int = 42) -> list[TatqaRow]:
    """`n` (context, first `questions` questions) pairs from the official TAT-QA JSON."""
    file = Path(path)
    data = _read_json(file)
    if not isinstance(data, list):
        raise DatasetError(f"{file}: expected a JSON list of contexts, got {type(data).__name__}")
    items = [e for i, d in enumerate(data) if (e := _tatqa_entry(file, i, d, questions))]
    return _take(items, n, shuffle_seed, file, f"contexts with >= {questions} questions")


def _review_line(file: Path, line: int, rec: Any) -> tuple[str, str]:
    if not isinstance(rec, dict) or "parent_asin" not in rec or "text" not in rec:
        raise DatasetError(f"{file}: line {line}: expected an object with 'parent_asin' "
                           "and 'text'")
    review = {"title": rec.get("title", ""), "rating": rec.get("rating", 0.0),
              "text": rec["text"], "helpful_vote": rec.get("helpful_vote", 0)}
    return str(rec["parent_asin"]), json.dumps(review)


def _reviews_by_item(file: Path) -> dict[str, list[str]]:
    items: dict[str, list[str]] = {}
    try:
        lines = file.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise DatasetError(f"{file}: no such Amazon Reviews file") from None
    except UnicodeDecodeError as e:
        raise DatasetError(f"{file}: not a UTF-8 JSON-lines file ({e})") from None
    for line, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            rec = json.loads(raw)
        except json.JSONDecodeError as e:
            raise DatasetError(f"{file}: line {line}: not valid JSON ({e})") from None
        asin, review = _review_line(file, line, rec)
        items.setdefault(asin, []).append(review)
    return items


def load_amazon(path: str | Path, n: int, chunks: int, per_chunk: int,
                shuffle_seed: int = 42) -> list[tuple[str, ...]]:
    """`n` items, each `chunks` chunks of `per_chunk` reviews (one JSON object a line)."""
    return [item_chunks for _, item_chunks in
            load_amazon_items(path, n, chunks, per_chunk, shuffle_seed)]


def load_amazon_items(path: str | Path, n: int, chunks: int, per_chunk: int,
                      shuffle_seed: int = 42) -> list[tuple[str, tuple[str, ...]]]:
    """As `load_amazon`, each item with its product id (`parent_asin`)."""
    file = Path(path)
    need = chunks * per_chunk
    items = [(asin, revs[:need]) for asin, revs in _reviews_by_item(file).items()
             if len(revs) >= need]
    picked = _take(items, n, shuffle_seed, file, f"items with >= {need} reviews")
    return [(asin, tuple("\n".join(revs[c * per_chunk:(c + 1) * per_chunk])
                         for c in range(chunks)))
            for asin, revs in picked]
