"""Prompt-cache substitution (PAPER.md §2.2 pass 3).

A bottom-up walk per query resolves every op whose inputs are known before execution
(inputs, data, formats, deterministic lambdas, and anything already fetched) and probes the
prompt cache with the signature of each cacheable op whose inputs are all resolved. Hits
cascade: a fetched answer resolves the prompts downstream of it. An op that hits for every
query becomes a CacheFetch op; partial hits are kept per (op, query) and the query
processor skips those calls.

LLM probes are keyed under `namespace`, which must be the very namespace the query
processor writes results under (`ProcessorConfig.namespace`): the run's output identity
(backend, engine, model and weights, output caps, the batch's output profiles; see
`prompt_cache.output_namespace` and `experiments.workflow_run.prompt_cache_namespace`),
not just a model name, or another engine's outputs would hit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from helium_lab.dsl.graph import BoundGraph, Graph
from helium_lab.dsl.ops import CacheFetchOp, LambdaOp, LLMOp, Msg, OutputOp
from helium_lab.op_value import op_value
from helium_lab.optimizer.prompt_cache import PromptCache, lambda_signature, llm_signature


def message_texts(messages: tuple[Msg, ...], value: dict[str, str]) -> list[tuple[str, str]]:
    """Each message as (role, content text) with its refs resolved."""
    return [(m.role, "".join(p if isinstance(p, str) else value[p.op] for p in m.parts))
            for m in messages]


@dataclass
class Substitution:
    graph: Graph
    fetched: dict[str, dict[int, str]] = field(default_factory=dict)
    probes: int = 0
    hits: int = 0


def substitute(bound: BoundGraph, cache: PromptCache, namespace: str) -> Substitution:
    """Probe `cache` for every cacheable op of every query whose inputs resolve before
    execution (LLM ops under `namespace`); full hits become CacheFetch ops."""
    graph = bound.graph
    fetched: dict[str, dict[int, str]] = {}
    probes = hits = 0
    for q in range(bound.size):
        value: dict[str, str] = {}
        for oid in graph.order:
            op = graph.ops[oid]
            if isinstance(op, OutputOp) or not all(d in value for d in op.inputs()):
                continue
            if isinstance(op, LLMOp):
                if not op.cacheable:
                    continue
                probes += 1
                key = llm_signature(namespace, message_texts(op.messages, value), op.sampling,
                                    op.profile)
                got = cache.get(key)
                if got is not None:
                    hits += 1
                    value[oid] = got
                    fetched.setdefault(oid, {})[q] = got
            elif isinstance(op, LambdaOp) and not op.deterministic:
                continue
            elif isinstance(op, LambdaOp) and op.cacheable:
                args = [value[a] for a in op.args]
                probes += 1
                got = cache.get(lambda_signature(op, args))
                if got is not None:
                    hits += 1
                    fetched.setdefault(oid, {})[q] = got
                value[oid] = got if got is not None else op_value(op, q, bound, value.__getitem__)
            else:
                value[oid] = op_value(op, q, bound, value.__getitem__)
    ops = dict(graph.ops)
    for oid, per_query in list(fetched.items()):
        if len(per_query) == bound.size:
            ops[oid] = CacheFetchOp(id=oid, owner=graph.ops[oid].owner, replaces=oid,
                                    values=tuple(per_query[q] for q in range(bound.size)))
            del fetched[oid]
    return Substitution(graph.replace(ops), fetched, probes, hits)

