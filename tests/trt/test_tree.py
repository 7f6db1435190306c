"""Templated radix tree: insertion with splits, queries, reconstruction."""

from __future__ import annotations

import pytest

from helium_lab.trt import TemplatedRadixTree


def fig4_tree() -> TemplatedRadixTree:
    t = TemplatedRadixTree()
    q = t.slot("Question", 10)
    a1 = t.slot("A1", 50)
    t.add("Op1", [1, 2, 3, q, 7, 8])
    t.add("Op2", [4, 5, q, 7, 8])
    t.add("Op3", [4, 5, q, 9, a1], deps=["Op1"])
    return t


def test_split_and_reconstruct() -> None:
    t = fig4_tree()
    assert t.template("Op3") == [4, 5, t.slot("Question", 10), 9, t.slot("A1", 50)]
    assert t.template("Op1") == [1, 2, 3, t.slot("Question", 10), 7, 8]
    # Agent 2's prefix [4 5 <Q>] became a node of its own with two children
    labels = sorted(list(n.label) for n in t.nodes() if n.parent is not None)
    assert [4, 5, -1] in labels and [7, 8] in labels and [9, -2] in labels


def test_weights_and_eq1_prefill() -> None:
    t = fig4_tree()
    assert t.prompt_weight("Op3") == 2 + 10 + 1 + 50
    assert t.shared_weight("Op2", "Op3") == 12
    assert t.shared_weight("Op1", "Op2") == 0
    assert t.prefill_weight(None, "Op2") == 14
    assert t.prefill_weight("Op2", "Op3") == 51
    assert t.static_prefix("Op3") == 2


def test_groups_workers_and_errors() -> None:
    t = fig4_tree()
    assert t.inner_groups() == [["Op1"], ["Op2", "Op3"]]
    t.add("Op2@w1", [4, 5, t.slot("Question", 10), 7, 8], worker=1)
    assert t.shared_weight("Op2", "Op2@w1") == 0  # no sharing across workers
    with pytest.raises(ValueError, match="inserted twice"):
        t.add("Op1", [1])
    with pytest.raises(ValueError, match="depends on 'nope'"):
        t.add("Op9", [1], deps=["nope"])
    assert t.nbytes() > 0 and len(t) == 4
