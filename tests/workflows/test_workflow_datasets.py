"""Local dataset loaders (MMLU CSVs, TAT-QA JSON, Amazon JSONL) and their error messages."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from helium_lab.errors import ConfigError, HeliumError
from helium_lab.workflows import make_workload
from helium_lab.workflows.datasets import load_amazon, load_mmlu, load_tatqa


def write_mmlu(root: Path) -> Path:
    root.mkdir()
    (root / "algebra_test.csv").write_text(
        'What is 2+2?,3,4,5,6,B\n"Solve x, if 2x=6",1,2,3,4,C\n')
    (root / "history_test.csv").write_text("Who came first?,Ra,Ka,Ma,Ta,A\n")
    return root


def tatqa_entry(n_questions: int, tag: str) -> dict[str, object]:
    return {
        "table": {"uid": tag, "table": [["Year", "2019"], ["Revenue", "10"]]},
        "paragraphs": [{"uid": "p2", "order": 2, "text": f"{tag} second."},
                       {"uid": "p1", "order": 1, "text": f"{tag} first."}],
        "questions": [{"uid": f"q{k}", "order": k, "question": f"{tag} question {k}?"}
                      for k in range(n_questions)],
    }


def write_amazon(path: Path, items: dict[str, int]) -> Path:
    lines = [json.dumps({"parent_asin": asin, "title": f"t{k}", "text": f"{asin} review {k}",
                         "rating": 5.0, "helpful_vote": k})
             for asin, n in items.items() for k in range(n)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_mmlu_loader_formats_and_shuffles(tmp_path: Path) -> None:
    root = write_mmlu(tmp_path / "mmlu")
    qs = load_mmlu(root, 3)
    assert sorted(q.splitlines()[0] for q in qs) == [
        "Solve x, if 2x=6", "What is 2+2?", "Who came first?"]
    assert "What is 2+2?\nA) 3\nB) 4\nC) 5\nD) 6" in qs
    assert load_mmlu(root, 3) == qs
    one = load_mmlu(root / "history_test.csv", 1)
    assert one == ["Who came first?\nA) Ra\nB) Ka\nC) Ma\nD) Ta"]


def test_mmlu_workload_binds_real_questions(tmp_path: Path) -> None:
    root = write_mmlu(tmp_path / "mmlu")
    bound = make_workload("debate", batch_size=2, dataset_path=str(root))
    assert all(q.count("\n") == 4 for q in bound.batch["question"])
    assert bound.meta["params"]["dataset_path"] == str(root)  # type: ignore[index]


def test_mmlu_errors_name_the_file(tmp_path: Path) -> None:
    root = write_mmlu(tmp_path / "mmlu")
    with pytest.raises(ConfigError, match="only 3 MMLU questions"):
        load_mmlu(root, 4)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x_test.csv").write_text("q,a,b,c,d,B\nq,a,b,c,A\n")
    with pytest.raises(ConfigError, match=r"x_test\.csv: line 2: expected 6 columns"):
        load_mmlu(bad, 1)
    (bad / "x_test.csv").write_text("q,a,b,c,d,E\n")
    with pytest.raises(ConfigError, match=r"x_test\.csv: line 1: answer 'E'"):
        load_mmlu(bad, 1)
    with pytest.raises(ConfigError, match="no such MMLU"):
        load_mmlu(tmp_path / "missing", 1)


def test_tatqa_loader_and_workload(tmp_path: Path) -> None:
    path = tmp_path / "tatqa.json"
    path.write_text(json.dumps([tatqa_entry(6, "A"), tatqa_entry(2, "B"), tatqa_entry(7, "C")]))
    rows = load_tatqa(path, 2, questions=6)
    assert sorted(ctx.split()[0] for ctx, _ in rows) == ["A", "C"]  # B has too few questions
    ctx, qs = next(r for r in rows if r[0].startswith("A"))
    assert ctx == "A first.\nA second.\n| Year | 2019 |\n| Revenue | 10 |"
    assert qs == tuple(f"A question {k}?" for k in range(6))
    bound = make_workload("reflect", batch_size=2, dataset_path=str(path))
    assert {bound.batch["q6"][0], bound.batch["q6"][1]} == {"A question 5?", "C question 5?"}


def test_tatqa_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "tatqa.json"
    path.write_text("{not json")
    with pytest.raises(ConfigError, match=r"tatqa\.json: not valid JSON"):
        load_tatqa(path, 1, questions=1)
    path.write_text(json.dumps([{"paragraphs": []}]))
    with pytest.raises(ConfigError, match=r"tatqa\.json: entry 0: expected"):
        load_tatqa(path, 1, questions=1)
    path.write_text(json.dumps([tatqa_entry(1, "A")]))
    with pytest.raises(ConfigError, match=r"tatqa\.json: only 0 contexts with >= 6 questions"):
        make_workload("mapred_tatqa", batch_size=1, dataset_path=str(path))


def test_amazon_loader_and_workloads(tmp_path: Path) -> None:
    path = write_amazon(tmp_path / "reviews.jsonl", {"X": 60, "Y": 12, "Z": 61})
    items = load_amazon(path, 2, chunks=6, per_chunk=10)
    assert all(len(item) == 6 for item in items)
    first = [json.loads(line) for line in items[0][0].splitlines()]
    assert len(first) == 10 and set(first[0]) == {"title", "rating", "text", "helpful_vote"}
    last = {json.loads(item[5].splitlines()[-1])["text"] for item in items}
    assert last == {"X review 59", "Z review 59"}  # Y has too few reviews; Z is cut at 60
    bound = make_workload("parallel", batch_size=2, dataset_path=str(path))
    assert len(bound.batch["chunk6"]) == 2
    # the product description: the reference's template, the id and N/A (no metadata file)
    for item, chunk in zip(bound.batch["item"], bound.batch["chunk6"], strict=True):
        asin = json.loads(chunk.splitlines()[-1])["text"].split()[0]
        assert item.startswith(f"- Title: {asin}\n") and "- Price: N/A" in item
    small = make_workload("iterative", batch_size=3, chunks=2, reviews_per_chunk=5,
                          dataset_path=str(path))
    assert small.size == 3


def test_amazon_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "reviews.jsonl"
    path.write_text('{"parent_asin": "X", "text": "ok"}\nnot json\n')
    with pytest.raises(ConfigError, match=r"reviews\.jsonl: line 2: not valid JSON"):
        load_amazon(path, 1, chunks=1, per_chunk=1)
    path.write_text('{"text": "no asin"}\n')
    with pytest.raises(ConfigError, match=r"reviews\.jsonl: line 1: expected an object"):
        load_amazon(path, 1, chunks=1, per_chunk=1)
    write_amazon(path, {"X": 5})
    with pytest.raises(ConfigError, match=r"reviews\.jsonl: only 0 items with >= 60 reviews"):
        make_workload("iterative", batch_size=1, dataset_path=str(path))


@pytest.mark.parametrize(("loader", "name"), [
    (lambda p: load_mmlu(p, 1), "mmlu.csv"),
    (lambda p: load_tatqa(p, 1, 1), "tatqa.json"),
    (lambda p: load_amazon(p, 1, 1, 1), "reviews.jsonl"),
])
def test_a_binary_dataset_file_is_named(loader: Any, name: str, tmp_path: Path) -> None:
    path = tmp_path / name
    path.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(HeliumError, match=str(path)):
        loader(path)
