"""Optimizer passes: pruning, multi-level CSE, prompt-cache substitution and its store."""

from __future__ import annotations

import json
import warnings

import pytest

from helium_lab.dsl import SamplingParams, Workflow
from helium_lab.errors import ConfigError
from helium_lab.optimizer import OptimizerConfig, PromptCache, optimize
from helium_lab.optimizer.prompt_cache import llm_signature
from helium_lab.tokenizer import SyntheticTokenizer, synthetic_text

TOK = SyntheticTokenizer()


def test_prune_drops_dead_ops_and_unrendered_format_args() -> None:
    wf = Workflow("p")
    q = wf.input("q")
    spec = wf.llm([("user", q)], name="speculative")
    used = wf.llm([("user", q)], name="used", sampling=SamplingParams(temperature=0.5))
    # `spec` is passed but never rendered by the template: an unrendered branch
    wf.output("o", wf.llm([("user", wf.fmt("{u} only", u=used, s=spec))], name="final"))
    wf.llm([("user", q)], name="dead")
    plan = optimize(wf.build().compile(q=["a"]), OptimizerConfig(cse=False), tokenizer=TOK)
    assert sorted(plan.pruned) == ["dead", "speculative"]
    assert "speculative" not in plan.graph.ops


def test_cse_merges_multi_level_including_greedy_llm_ops() -> None:
    wf = Workflow("c")
    q = wf.input("q")
    role = "You are an expert. "
    chains = []
    for i in range(2):  # two identical two-level chains, defined separately
        a = wf.llm([("system", role), ("user", wf.fmt("Q: {q}", q=q))], name=f"a{i}")
        b = wf.llm([("system", role), ("user", wf.fmt("Refine: {a}", a=a))], name=f"b{i}")
        chains.append(b)
    hot = [wf.llm([("user", q)], name=f"hot{i}", sampling=SamplingParams(temperature=1.0))
           for i in range(2)]
    wf.output("o", wf.llm([("user", wf.fmt("{x} {y} {h} {k}", x=chains[0], y=chains[1],
                                           h=hot[0], k=hot[1]))], name="sum"))
    plan = optimize(wf.build().compile(q=["a"]), tokenizer=TOK)
    assert plan.aliases["a1"] == "a0" and plan.aliases["b1"] == "b0"
    assert "hot1" not in plan.aliases  # sampled calls are never merged
    assert {op.id for op in plan.llm_ops} == {"a0", "b0", "hot0", "hot1", "sum"}


def test_cse_keeps_distinct_lambdas_apart() -> None:
    wf = Workflow("l")
    q = wf.input("q")
    up = wf.lam(lambda s: s.upper(), q, name="up")
    low = wf.lam(lambda s: s.lower(), q, name="low")
    wf.output("o", wf.fmt("{a}{b}", a=up, b=low))
    plan = optimize(wf.build().compile(q=["Ab"]), tokenizer=TOK)
    assert plan.aliases == {}


def fetch_workflow() -> Workflow:
    wf = Workflow("cache")
    q, doc = wf.input("q"), wf.input("doc")
    base = wf.llm([("system", "static analyst"), ("user", doc)], name="base")
    top = wf.llm([("user", wf.fmt("{b} then {q}", b=base, q=q))], name="top")
    wf.output("o", top)
    return wf


def test_prompt_cache_hits_become_cache_fetch_and_cascade() -> None:
    wf = fetch_workflow()
    cache = PromptCache()
    base_op = wf.build().ops["base"]
    cache.put(llm_signature("m", [("system", "static analyst"), ("user", "D")],
                            SamplingParams(), base_op.profile), "BASE")  # type: ignore[attr-defined]
    plan = optimize(wf.build().compile(q=["x", "y"], doc=["D", "D"]), cache=cache,
                    namespace="m", tokenizer=TOK)
    assert plan.graph.ops["base"].kind == "cache_fetch"
    assert plan.graph.ops["base"].values == ("BASE", "BASE")  # type: ignore[attr-defined]
    # a different namespace (another model) never hits
    other = optimize(wf.build().compile(q=["x"], doc=["D"]), cache=cache, namespace="other",
                     tokenizer=TOK)
    assert other.graph.ops["base"].kind == "llm"
    # partial hits stay per query
    part = optimize(wf.build().compile(q=["x", "y"], doc=["D", "E"]), cache=cache,
                    namespace="m", tokenizer=TOK)
    assert part.fetched == {"base": {0: "BASE"}}
    assert part.num_calls() == 3


def test_store_roundtrip_lru_and_corrupt_file(tmp_path) -> None:
    path = tmp_path / "store.json"
    cache = PromptCache(capacity=2, path=path)
    for k in "abc":
        cache.put(k, k.upper())
    cache.save()
    again = PromptCache(capacity=2, path=path)
    assert len(again) == 2 and again.get("a") is None and again.get("c") == "C"
    path.write_text("{not json")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cold = PromptCache(path=path)
    assert len(cold) == 0 and str(path) in str(caught[0].message)
    path.write_text(json.dumps({"version": 1, "entries": [["k", 3]]}))
    with pytest.warns(UserWarning, match="unreadable"):
        PromptCache(path=path)


def test_save_is_atomic(tmp_path, monkeypatch) -> None:
    path = tmp_path / "store.json"
    cache = PromptCache(path=path)
    cache.put("k", "v")
    cache.save()
    before = path.read_text()
    cache.put("k2", "v2")

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr("os.replace", boom)
    with pytest.raises(OSError):
        cache.save()
    assert path.read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store.json", "store.json.lock"]


def test_two_runs_sharing_a_store_lose_nothing(tmp_path) -> None:
    """Both load the same store, each adds its own entries, both save: the store has all."""
    path = tmp_path / "store.json"
    seed = PromptCache(path=path)
    seed.put("old", "O")
    seed.save()
    a, b = PromptCache(path=path), PromptCache(path=path)
    a.put("from_a", "A")
    b.put("from_b", "B")
    a.save()
    b.save()
    merged = PromptCache(path=path)
    assert {k: merged.get(k) for k in ("old", "from_a", "from_b")} == {
        "old": "O", "from_a": "A", "from_b": "B"}


def test_a_conflicting_key_is_not_merged_back(tmp_path) -> None:
    path = tmp_path / "store.json"
    first = PromptCache(path=path)
    first.put("k", "v1")
    first.save()
    second = PromptCache(path=path)
    assert second.update([("k", "x"), ("k", "y")]) == 1  # the batch disagrees with itself
    second.save()
    assert PromptCache(path=path).get("k") is None


def test_a_corrupt_store_is_backed_up_before_it_is_replaced(tmp_path) -> None:
    path = tmp_path / "store.json"
    path.write_text("{not json")
    with pytest.warns(UserWarning, match="unreadable"):
        cache = PromptCache(path=path)
    cache.put("k", "v")
    with pytest.warns(UserWarning, match=r"moved to .*store\.json\.corrupt"):
        cache.save()
    assert (tmp_path / "store.json.corrupt").read_text() == "{not json"
    assert PromptCache(path=path).get("k") == "v"
    path.write_text("{again")
    with pytest.warns(UserWarning, match=r"store\.json\.corrupt\.1"):
        cache.save()
    assert (tmp_path / "store.json.corrupt.1").read_text() == "{again"


def test_static_prefix_detection_threshold() -> None:
    wf = Workflow("s")
    q = wf.input("q")
    wf.output("a", wf.llm([("system", synthetic_text("long", 250)), ("user", q)], name="long"))
    wf.output("b", wf.llm([("system", synthetic_text("short", 50)), ("user", q)], name="short"))
    plan = optimize(wf.build().compile(q=["x"]), tokenizer=TOK)
    assert set(plan.static_prefixes) == {"long"}
    plan = optimize(wf.build().compile(q=["x"]), OptimizerConfig(static_prefix_min_tokens=20),
                    tokenizer=TOK)
    assert set(plan.static_prefixes) == {"long", "short"}


def test_unknown_pass_name() -> None:
    with pytest.raises(ConfigError, match=r"unknown optimizer pass\(es\) \['cse2'\]"):
        OptimizerConfig.from_passes(["prune", "cse2"])


def test_cse_functional_leaves_identical_llm_calls_alone() -> None:
    wf = Workflow("twice")
    q = wf.input("q")
    a = wf.llm([("user", q)], name="a")
    b = wf.llm([("user", q)], name="b")
    fa = wf.fmt("[{x}]", x=q)
    fb = wf.fmt("[{x}]", x=q)
    wf.output("o", wf.llm([("user", [a, b, fa, fb])], name="join"))
    bound = wf.build().compile(q=["x"])
    full = optimize(bound, OptimizerConfig.from_passes(["cse"]), tokenizer=TOK)
    ref = optimize(bound, OptimizerConfig.from_passes(["cse_functional"]), tokenizer=TOK)
    assert "b" in full.aliases and len(full.graph.llm_ops) == 2
    assert "b" not in ref.aliases and len(ref.graph.llm_ops) == 3
    assert len(ref.aliases) == 1  # the two identical format ops still merge


def test_cse_and_cse_functional_exclude_each_other() -> None:
    with pytest.raises(ConfigError, match=r"system\.passes"):
        OptimizerConfig.from_passes(["cse", "cse_functional"])
