"""Prompt-cache keys hold everything that decides an LLM call's output (docs/reliability.md).

Per call: the rendered messages and every sampling field; per batch, in the namespace: the
run's output identity and the batch's output profiles. Each dimension: changing it misses
(the run makes the calls and returns what an empty cache would), repeating it hits with
identical outputs. Run-level dimensions (backend, model, path, caps) are in
tests/experiments/test_prompt_cache_identity.py.
"""

from __future__ import annotations

import dataclasses
import json
import os
import warnings
from pathlib import Path
from typing import Any

import pytest

from helium_lab.config import PlannerSettings, SystemConfig
from helium_lab.dsl import SamplingParams, Workflow
from helium_lab.dsl.ops import OutputProfile
from helium_lab.optimizer.prompt_cache import (
    PromptCache,
    llm_signature,
    output_namespace,
    weights_fingerprint,
)
from helium_lab.pipeline import plan_batch
from helium_lab.processor import QueryProcessor
from helium_lab.processor.echo_engine import run_echo
from helium_lab.tokenizer import SyntheticTokenizer

TOK = SyntheticTokenizer()
RUN = output_namespace(backend="echo", model="m")
HELIUM = SystemConfig(name="helium")
BASE_SAMPLING = SamplingParams(temperature=0.0, max_tokens=64)
BASE_PROFILE = OutputProfile(mean=20, lo=15, hi=25)

# one changed value per SamplingParams field (the test below checks all are covered)
SAMPLING_CHANGES: dict[str, Any] = {"temperature": 0.7, "max_tokens": 22, "top_p": 0.9, "seed": 7}


def test_every_sampling_field_is_in_the_signature() -> None:
    assert set(SAMPLING_CHANGES) == {f.name for f in dataclasses.fields(SamplingParams)}
    msgs = [("system", "s"), ("user", "u")]
    base = llm_signature(RUN, msgs, BASE_SAMPLING)
    assert base == llm_signature(RUN, msgs, SamplingParams(temperature=0.0, max_tokens=64))
    for name, value in SAMPLING_CHANGES.items():
        changed = dataclasses.replace(BASE_SAMPLING, **{name: value})
        assert llm_signature(RUN, msgs, changed) != base, name


def _workflow(sampling: SamplingParams, profile: OutputProfile, *, twin: OutputProfile | None
              = None) -> Workflow:
    wf = Workflow("keys")
    q = wf.input("q")
    first = wf.llm([("system", "You answer."), ("user", q)], name="first", sampling=sampling,
                   profile=profile)
    wf.output("first", first)
    wf.output("second", wf.llm([("user", wf.fmt("Revise {a} for {q}", a=first, q=q))],
                               name="second", sampling=sampling, profile=profile))
    if twin is not None:  # same messages and sampling as `first`, another output profile
        wf.output("twin", wf.llm([("system", "You answer."), ("user", q)], name="twin",
                                 sampling=sampling, profile=twin))
    return wf


def _run(wf: Workflow, cache: PromptCache, system: SystemConfig = HELIUM
         ) -> tuple[int, list[dict[str, str]], int]:
    """Plan and run one batch on the echo engine as experiments.workflow_run does: one
    namespace for probes and updates. Returns (calls made, outputs, prompt-cache hits)."""
    bound = wf.build().compile(q=["How far is the moon?", "Why is the sky blue?"])
    planned = plan_batch(bound, system, PlannerSettings(), 2, TOK, cache=cache, namespace=RUN)
    proc = QueryProcessor(planned.plan, planned.schedule, TOK, system.processor(RUN))
    run_echo(proc, TOK)
    cache.update(proc.cache_updates)
    hits = int(planned.plan.stats.get("prompt_cache_hits", 0))
    return len(proc.records), proc.outputs(), hits


DIMENSIONS = {
    **{f"sampling.{k}": (dataclasses.replace(BASE_SAMPLING, **{k: v}), BASE_PROFILE)
       for k, v in SAMPLING_CHANGES.items()},
    "output_profile": (BASE_SAMPLING, OutputProfile(mean=40, lo=30, hi=50)),
    "output_profile_bounds_only": (BASE_SAMPLING, OutputProfile(mean=20, lo=20, hi=20)),
}


@pytest.mark.parametrize("dimension", sorted(DIMENSIONS))
def test_changing_a_dimension_misses_and_repeating_hits(dimension: str) -> None:
    sampling, profile = DIMENSIONS[dimension]
    cache = PromptCache()
    calls, out, _ = _run(_workflow(BASE_SAMPLING, BASE_PROFILE), cache)
    assert calls == 4
    again, again_out, hits = _run(_workflow(BASE_SAMPLING, BASE_PROFILE), cache)
    assert (again, hits) == (0, 4) and again_out == out
    fresh_calls, fresh_out, _ = _run(_workflow(sampling, profile), PromptCache())
    changed, changed_out, hits = _run(_workflow(sampling, profile), cache)
    assert (changed, hits) == (fresh_calls, 0) == (4, 0)
    assert changed_out == fresh_out
    if sampling.deterministic:  # a sampled op is never cached, so never hits either
        repeat, repeat_out, hits = _run(_workflow(sampling, profile), cache)
        assert (repeat, hits) == (0, 4) and repeat_out == changed_out


def test_output_lengths_really_differ_across_the_profiles() -> None:
    """The profile dimension matters: same prompts, other profile, other outputs."""
    _, a, _ = _run(_workflow(BASE_SAMPLING, BASE_PROFILE), PromptCache())
    _, b, _ = _run(_workflow(*DIMENSIONS["output_profile"]), PromptCache())
    assert a != b


def test_ops_told_apart_only_by_their_profile_are_keyed_apart() -> None:
    """Two ops with the same messages and sampling but different profiles (not merged
    without CSE) get two keys: each hits its own output, never the other's."""
    no_cse = SystemConfig(name="no_cse", passes=("prompt_cache",))
    wf = _workflow(BASE_SAMPLING, BASE_PROFILE, twin=OutputProfile(mean=40, lo=30, hi=50))
    cache = PromptCache()
    calls, out, _ = _run(wf, cache, no_cse)
    assert calls == 6 and out[0]["first"] != out[0]["twin"]
    again, again_out, hits = _run(wf, cache, no_cse)
    assert (again, hits) == (0, 6) and again_out == out


def test_update_drops_conflicting_keys_and_keeps_lru_order() -> None:
    cache = PromptCache()
    cache.put("k", "old")
    dropped = cache.update([("a", "1"), ("k", "x"), ("b", "2"), ("k", "y"), ("a", "1")])
    assert dropped == 1 and cache.get("k") is None
    assert list(cache._entries) == ["b", "a"]


def test_a_version_1_store_is_reported_and_starts_cold(tmp_path: Path) -> None:
    path = tmp_path / "store.json"
    path.write_text(json.dumps({"version": 1, "entries": [["k", "v"]]}))
    with pytest.warns(UserWarning, match=r"unreadable.*version-2"):
        cache = PromptCache(path=path)
    assert len(cache) == 0
    cache.put("k2", "v2")
    with pytest.warns(UserWarning, match=r"moved to .*store\.json\.corrupt"):
        cache.save()  # the old store is kept, not overwritten
    assert json.loads((tmp_path / "store.json.corrupt").read_text())["version"] == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert PromptCache(path=path).get("k2") == "v2"


def test_weights_fingerprint(tmp_path: Path) -> None:
    model = tmp_path / "m"
    model.mkdir()
    (model / "config.json").write_text('{"hidden_size": 128}')
    (model / "model.safetensors").write_bytes(b"\0" * 32)
    base = weights_fingerprint(model)
    assert base == weights_fingerprint(model)  # deterministic
    assert weights_fingerprint(tmp_path / "nowhere") == "missing"
    (model / ".lock").write_text("x")  # dot-files and subfolders do not count
    (model / "sub").mkdir()
    (model / "sub" / "x.bin").write_bytes(b"1")
    assert weights_fingerprint(model) == base
    (model / "config.json").write_text('{"hidden_size": 256}')  # same size, other content
    changed = weights_fingerprint(model)
    assert changed != base
    big = model / "model-00002.safetensors"
    big.write_bytes(b"\0" * (2 << 20))
    with_big = weights_fingerprint(model)
    assert with_big != changed
    st = big.stat()
    os.utime(big, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert weights_fingerprint(model) != with_big


def test_output_namespace_is_canonical() -> None:
    assert output_namespace(a=1, b={"y": 2, "x": None}) == output_namespace(b={"x": None, "y": 2},
                                                                             a=1)
    assert output_namespace(a=1) != output_namespace(a=2)
