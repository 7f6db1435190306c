"""The query optimizer: pruning, CSE, prompt-cache substitution, static-prefix detection.

Each pass is switchable (`OptimizerConfig`), which is what the ablation study needs.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from helium_lab.dsl.graph import BoundGraph
from helium_lab.errors import ConfigError
from helium_lab.optimizer.cache_substitution import substitute
from helium_lab.optimizer.cse import cse
from helium_lab.optimizer.prompt_cache import PromptCache
from helium_lab.optimizer.prune import prune
from helium_lab.plan import Plan
from helium_lab.prompt import leading_static, segments
from helium_lab.tokenizer import SyntheticTokenizer, Tokenizer

PASSES = ("prune", "cse", "cse_functional", "prompt_cache", "static_prefix")


@dataclass(frozen=True)
class OptimizerConfig:
    """Which passes run. `static_prefix_min_tokens`: shortest prefix worth pre-warming.
    `cse_llm`: CSE merges identical greedy LLM calls too (pass `cse`, the paper's design)
    or only non-LLM ops (pass `cse_functional`, what the reference runtime does)."""

    prune: bool = True
    cse: bool = True
    prompt_cache: bool = True
    static_prefix: bool = True
    static_prefix_min_tokens: int = 200
    cse_llm: bool = True

    @staticmethod
    def from_passes(passes: Iterable[str], static_prefix_min_tokens: int = 200) -> OptimizerConfig:
        names = list(passes)
        unknown = [p for p in names if p not in PASSES]
        if unknown:
            raise ConfigError(f"unknown optimizer pass(es) {unknown}; known: {list(PASSES)}")
        on = {p: p in names for p in PASSES}
        if on["cse"] and on["cse_functional"]:
            raise ConfigError("optimizer passes 'cse' and 'cse_functional' exclude each other "
                              "(config key 'system.passes')")
        return OptimizerConfig(on["prune"], on["cse"] or on["cse_functional"],
                               on["prompt_cache"], on["static_prefix"],
                               static_prefix_min_tokens, cse_llm=not on["cse_functional"])


def optimize(bound: BoundGraph, config: OptimizerConfig = OptimizerConfig(), *,
             cache: PromptCache | None = None, namespace: str = "default",
             tokenizer: Tokenizer | None = None) -> Plan:
    """Run the enabled passes in the paper's order and return the optimized plan."""
    t0 = time.perf_counter()
    graph = bound.graph
    plan = Plan(bound=bound, original=graph)
    if config.prune:
        graph, plan.pruned = prune(graph)
    if config.cse:
        graph, plan.aliases = cse(graph, merge_llm=config.cse_llm)
    t1 = time.perf_counter()
    if config.prompt_cache and cache is not None:
        sub = substitute(BoundGraph(graph, bound.batch, bound.size), cache, namespace)
        graph, plan.fetched = sub.graph, sub.fetched
        plan.stats.update(prompt_cache_probes=sub.probes, prompt_cache_hits=sub.hits)
        if config.prune:  # ops that only fed fetched results are dead now
            graph, more = prune(graph)
            plan.pruned += more
    t2 = time.perf_counter()
    if config.static_prefix:
        tok = tokenizer or SyntheticTokenizer()
        for op in graph.llm_ops:
            text = leading_static(segments(graph, op))
            if len(tok.encode(text)) >= config.static_prefix_min_tokens:
                plan.static_prefixes[op.id] = text
    plan.bound = BoundGraph(graph, bound.batch, bound.size)
    plan.stats.update(rewrite_ms=(t1 - t0) * 1e3, prompt_cache_ms=(t2 - t1) * 1e3,
                      optimizer_ms=(time.perf_counter() - t0) * 1e3)
    return plan


__all__ = ["PASSES", "OptimizerConfig", "PromptCache", "optimize"]
