"""Shared simulator test helpers: `serve_alone` (one request through a KV cache manager,
start to end) and a tiny query processor for driver tests: chains of calls, each prompt
extending the last.

Query q has `length` calls; call k's prompt is a shared system prefix, the query's own
text, and the outputs of calls 0..k-1 (a conversation that grows), so later calls hit the
prefix cache on earlier calls' prompt and output blocks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from helium_lab.dsl.ops import SamplingParams
from helium_lab.processor.calls import CallResult, LLMCall
from helium_lab.tokenizer import SyntheticTokenizer, synthetic_text
from sim.kv_cache import CacheHit, KVCacheManager
from sim.request import SimRequest


def serve_alone(kv: KVCacheManager, r: SimRequest,
                on_admit: Callable[[], object] | None = None) -> CacheHit:
    """Admit `r` with its prefix hit, prefill and decode it to the end, free it, checking
    the manager's invariants at each step; return the hit. `on_admit` runs right after
    admission (e.g. a host tier's end of step)."""
    hit = kv.find_cached_prefix(r)
    assert kv.allocate_slots(r, r.num_tokens - hit.num_tokens, hit)
    if on_admit is not None:
        on_admit()
    r.num_computed_tokens = r.num_tokens
    while True:
        r.sample()
        if r.finished:
            break
        assert kv.allocate_slots(r, 1)
        r.num_computed_tokens += 1
        kv.check_integrity()
    kv.free(r)
    kv.check_integrity()
    return hit


@dataclass
class ChainProcessor:
    """`queries` chains of `length` calls; query q runs on worker q % workers."""

    queries: int = 2
    length: int = 2
    workers: int = 1
    system_tokens: int = 40
    query_tokens: int = 10
    output_tokens: int = 5
    priorities: dict[int, int] = field(default_factory=dict)
    prewarm: bool = False
    tok: SyntheticTokenizer = field(default_factory=SyntheticTokenizer)
    log: list[tuple[str, int]] = field(default_factory=list)
    _history: dict[int, list[int]] = field(default_factory=dict)
    _step: dict[int, int] = field(default_factory=dict)
    _finished: int = 0

    def system(self) -> tuple[int, ...]:
        return tuple(self.tok.encode(synthetic_text("system", self.system_tokens)))

    def _call(self, q: int) -> LLMCall:
        k = self._step[q]
        prompt = self.system() + tuple(self._history[q])
        return LLMCall(call_id=q * 1000 + k, query=q, op=f"step{k}", worker=q % self.workers,
                       prompt_ids=prompt, pieces=((len(prompt), False),),
                       output_tokens=self.output_tokens, sampling=SamplingParams(),
                       priority=self.priorities.get(q, 0))

    def start(self) -> list[LLMCall]:
        calls = []
        for q in range(self.queries):
            self._history[q] = self.tok.encode(synthetic_text(f"query{q}", self.query_tokens))
            self._step[q] = 0
            calls.append(self._call(q))
        self.log.extend(("submit", c.call_id) for c in calls)
        return calls

    def on_finished(self, result: CallResult) -> list[LLMCall]:
        self.log.append(("finish", result.call_id))
        self._finished += 1
        q = result.call_id // 1000
        self._history[q].extend(result.output_ids)
        self._step[q] += 1
        if self._step[q] >= self.length:
            return []
        call = self._call(q)
        self.log.append(("submit", call.call_id))
        return [call]

    @property
    def done(self) -> bool:
        return self._finished == self.queries * self.length

    def step_graph_updates(self) -> list[dict[str, int]]:
        return []

    def prewarm_prompts(self) -> dict[int, list[tuple[int, ...]]]:
        if not self.prewarm:
            return {}
        return {w: [self.system()] for w in range(self.workers)}


@dataclass
class BurstProcessor:
    """`n` independent calls of `prompt_tokens` tokens each, all submitted at start.

    Prompts share a body but start with a distinct token, so no two share a cached block.
    """

    n: int
    prompt_tokens: int
    output_tokens: int
    seed: int = 0
    workers: int = 1
    finished: int = 0

    def start(self) -> list[LLMCall]:
        body = tuple(16 + (k * 7919 + self.seed) % 149_000 for k in range(self.prompt_tokens - 1))
        calls = []
        for i in range(self.n):
            prompt = (16 + i, *body)
            calls.append(LLMCall(call_id=i, query=i, op="burst", worker=i % self.workers,
                                 prompt_ids=prompt,
                                 pieces=((len(prompt), False),),
                                 output_tokens=self.output_tokens, sampling=SamplingParams()))
        return calls

    def on_finished(self, result: CallResult) -> list[LLMCall]:
        self.finished += 1
        return []

    @property
    def done(self) -> bool:
        return self.finished == self.n

    def step_graph_updates(self) -> list[dict[str, int]]:
        return []

    def prewarm_prompts(self) -> dict[int, list[tuple[int, ...]]]:
        return {}
