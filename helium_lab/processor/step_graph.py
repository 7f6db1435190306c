"""KVFlow's agent step graph: how many steps each agent is from running, kept by the
client as a batch runs and sent to every engine when it changes.

Semantics follow the reference program (mlsys-io/helium_demo,
`benchmark/bench_programs/utils/kvflow.py`, classes `KVFlowStepGraph` and
`KVFlowStepGraphUpdater`):

- An agent is a node of the program's graph; here, an LLM op (`LLMCall.op`), with an edge
  u -> v when v reads u's output, directly or through non-LLM ops.
- Steps to execution under all-predecessors (fan-in barrier) semantics: an active agent
  is 0 steps away; an agent whose predecessors are all active, done or counted is
  max(predecessor steps) + 1, a done agent counting 0; an agent that has not started and
  has no predecessors, or waits on one that is that far, is `FAR_FUTURE`; a done agent
  is reported `FAR_FUTURE` (its KV is the first to go).
- The client marks an agent active when the first item enters it and done when the last
  of the items that run it finishes it, and sends the distances only when they changed.

The engines' use of the distances (prefetch) is theirs: `sim.engine.SimEngine`'s
`update_step_graph`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from helium_lab.dsl.graph import Graph
from helium_lab.dsl.ops import LLMOp

FAR_FUTURE = 1_000_000  # helium_demo utils/kvflow.py `_FAR_FUTURE`

StepDistances = Mapping[str, int]
"""Agent (LLM op id) -> steps to its execution; `FAR_FUTURE` for done or unreached."""


def agent_predecessors(graph: Graph) -> dict[str, set[str]]:
    """Each LLM op's nearest LLM-op ancestors (through any chain of non-LLM ops)."""
    llm = {op.id for op in graph.llm_ops}
    preds: dict[str, set[str]] = {}
    for oid in llm:
        found: set[str] = set()
        stack = list(graph.ops[oid].inputs())
        seen: set[str] = set()
        while stack:
            d = stack.pop()
            if d in seen:
                continue
            seen.add(d)
            if d in llm:
                found.add(d)
            else:
                stack.extend(graph.ops[d].inputs())
        preds[oid] = found
    return preds


class StepGraph:
    """The agents in topological order and their predecessors."""

    def __init__(self, order: Sequence[str], preds: Mapping[str, set[str]]) -> None:
        self.order = tuple(order)
        self.preds = {a: set(preds.get(a, ())) & set(order) for a in order}

    @staticmethod
    def of(graph: Graph) -> StepGraph:
        return StepGraph([op.id for op in graph.llm_ops if isinstance(op, LLMOp)],
                         agent_predecessors(graph))

    def distances(self, active: set[str], done: set[str]) -> dict[str, int]:
        """Steps to execution of every agent, given the active and done ones."""
        done = done - active
        steps = {a: 0 if a in active or a in done else FAR_FUTURE for a in self.order}
        for a in self.order:
            if a in active or a in done or not self.preds[a]:
                continue
            before = [steps[p] for p in self.preds[a]]
            if max(before) < FAR_FUTURE:
                steps[a] = max(before) + 1
        for a in done:
            steps[a] = FAR_FUTURE
        return steps


class StepTracker:
    """The client's updater: `started(agent)` at each item's entry into an agent,
    `finished(agent)` at each item's exit; each returns the new distances when they
    changed, else None. `runs[agent]` is how many items run the agent in this batch."""

    def __init__(self, graph: StepGraph, runs: Mapping[str, int]) -> None:
        self.graph = graph
        self.runs = dict(runs)
        self.active: set[str] = set()
        self.done: set[str] = set()
        self._finished: dict[str, int] = {}
        self._last: dict[str, int] | None = None

    def started(self, agent: str) -> dict[str, int] | None:
        if agent in self.active or agent in self.done:
            return None
        self.active.add(agent)
        return self._changed()

    def finished(self, agent: str) -> dict[str, int] | None:
        n = self._finished[agent] = self._finished.get(agent, 0) + 1
        if n < self.runs.get(agent, 0) or agent in self.done:
            return None
        self.active.discard(agent)
        self.done.add(agent)
        return self._changed()

    def _changed(self) -> dict[str, int] | None:
        now = self.graph.distances(self.active, self.done)
        if now == self._last:
            return None
        self._last = now
        return now
