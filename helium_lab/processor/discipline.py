"""Dispatch disciplines: when a system's client lets a ready LLM call go to the engines.

The query processor queues a call once its inputs are known. A discipline adds *gates* on
top of the data dependencies, the way a baseline's client program holds calls back
(docs/systems.md has the reference program behind each):

* ``ready`` — no gate: every call whose inputs are known is submitted (LangGraph's
  `abatch`, Parrot, Helium's best-effort dispatch).
* ``supersteps`` — LangGraph (and KVFlow, which runs on it): `abatch` starts every query at
  once and runs each query's graph in Pregel supersteps: a node runs in the step after its
  inputs were written, and a step starts only when *every* task of the previous step of
  that query has finished. On the layered graphs of our workflows a call at LLM depth d
  (`llm_levels`) waits for all calls of depth d-1 of its query, not only its own inputs.
* ``op_pipeline`` — OpWise (`utils/opwise.py::WorkflowDAG.execute` in the reference
  programs): the LLM ops are linearized in one topological order (networkx's: depth by
  depth, build order within a depth) and op k is a pipeline stage fed by op k-1's output
  queue, so each query walks the ops strictly one after another (parallel branches
  included) while different queries overlap.
* ``agent_servers`` — AgentScope 0.1.6 (`utils/agentscope.py`): each agent is an RPC agent
  server with a fixed number of worker slots (`capacity`). Every query's calls are sent up
  front, in program order; a server takes requests first come, first served, and a taken
  request keeps its slot while it waits for its input placeholders to resolve and while
  its LLM call runs. So a call needs its inputs *and* a slot of its agent, and slots go to
  calls in program order whether or not their inputs are ready.

A discipline is told the calls a run issues (`prepare`), answers how many gates each call
starts with (`gates`), and, when a call finishes, which calls lose one gate
(`on_finished`). It never reads a clock; equal inputs give equal answers.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from helium_lab.dsl.graph import Graph
from helium_lab.dsl.ops import LLMOp
from helium_lab.errors import ConfigError

CallKey = tuple[str, int]  # (op id, query)

DISCIPLINES = ("ready", "supersteps", "op_pipeline", "agent_servers")


def llm_levels(graph: Graph) -> dict[str, int]:
    """Each LLM op's depth: 1 + the deepest LLM op it reads, directly or through non-LLM
    ops (1 for an op that reads only inputs). This is networkx's topological generation of
    the op in the graph of LLM calls, and LangGraph's superstep on a layered graph."""
    depth: dict[str, int] = {}
    for oid in graph.order:
        op = graph.ops[oid]
        below = max((depth[d] for d in op.inputs()), default=0)
        depth[oid] = below + 1 if isinstance(op, LLMOp) else below
    return {op.id: depth[op.id] for op in graph.llm_ops}


class Discipline:
    """The `ready` discipline, and the interface of the others."""

    name = "ready"

    def prepare(self, graph: Graph, issued: Sequence[CallKey]) -> None:
        """`issued`: the LLM calls this run submits, in program order (query by query, each
        query's ops in the graph's topological order)."""

    def gates(self, key: CallKey) -> int:
        """Gates the issued call `key` starts with (besides its inputs)."""
        return 0

    def on_finished(self, key: CallKey) -> list[CallKey]:
        """`key` finished: the calls that lose one gate."""
        return []


class Supersteps(Discipline):
    """Per query, a call of depth d waits for every call of depth d-1 of that query."""

    name = "supersteps"

    def __init__(self) -> None:
        self._level: dict[str, int] = {}
        self._members: dict[tuple[int, int], list[CallKey]] = {}  # (query, depth) -> calls

    def prepare(self, graph: Graph, issued: Sequence[CallKey]) -> None:
        self._level = llm_levels(graph)
        for key in issued:
            self._members.setdefault((key[1], self._level[key[0]]), []).append(key)

    def gates(self, key: CallKey) -> int:
        return len(self._members.get((key[1], self._level[key[0]] - 1), ()))

    def on_finished(self, key: CallKey) -> list[CallKey]:
        return list(self._members.get((key[1], self._level[key[0]] + 1), ()))


class OpPipeline(Discipline):
    """Each query runs its LLM ops one after another in one topological order."""

    name = "op_pipeline"

    def __init__(self) -> None:
        self._next: dict[CallKey, CallKey] = {}
        self._gated: set[CallKey] = set()

    def prepare(self, graph: Graph, issued: Sequence[CallKey]) -> None:
        level = llm_levels(graph)
        last: dict[int, CallKey] = {}
        # stable sort: within a query and a depth, calls keep program (build) order
        for key in sorted(issued, key=lambda k: (k[1], level[k[0]])):
            prev = last.get(key[1])
            if prev is not None:
                self._next[prev] = key
                self._gated.add(key)
            last[key[1]] = key

    def gates(self, key: CallKey) -> int:
        return 1 if key in self._gated else 0

    def on_finished(self, key: CallKey) -> list[CallKey]:
        nxt = self._next.get(key)
        return [] if nxt is None else [nxt]


class AgentServers(Discipline):
    """One server per agent with `capacity` slots, taken in program order."""

    name = "agent_servers"

    def __init__(self, capacity: int) -> None:
        self.capacity = _check_capacity(capacity)
        self._agent: dict[str, str] = {}
        self._waiting: dict[str, deque[CallKey]] = {}
        self._gated: set[CallKey] = set()
        self.busy: dict[str, int] = {}  # slots held per agent (for tests and diagnostics)

    def prepare(self, graph: Graph, issued: Sequence[CallKey]) -> None:
        for op in graph.llm_ops:
            self._agent[op.id] = _agent_of(op)
        for key in issued:  # program order = the order each server receives requests
            agent = self._agent[key[0]]
            if self.busy.get(agent, 0) < self.capacity:
                self.busy[agent] = self.busy.get(agent, 0) + 1
            else:
                self._waiting.setdefault(agent, deque()).append(key)
                self._gated.add(key)

    def gates(self, key: CallKey) -> int:
        return 1 if key in self._gated else 0

    def on_finished(self, key: CallKey) -> list[CallKey]:
        agent = self._agent[key[0]]
        queue = self._waiting.get(agent)
        if queue:
            return [queue.popleft()]  # the freed slot passes to the next request in line
        self.busy[agent] -= 1
        return []


def _agent_of(op: LLMOp) -> str:
    return op.agent or op.name or op.id


def _check_capacity(capacity: int) -> int:
    if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
        raise ConfigError(f"system.agent_capacity must be a positive integer, got {capacity!r}")
    return capacity


_PLAIN: dict[str, type[Discipline]] = {"ready": Discipline, "supersteps": Supersteps,
                                       "op_pipeline": OpPipeline}


def make_discipline(name: str, agent_capacity: int | None = None) -> Discipline:
    """The discipline `name` (config key `system.discipline`); validates both keys."""
    if agent_capacity is not None:
        _check_capacity(agent_capacity)
    if name == "agent_servers":
        if agent_capacity is None:
            raise ConfigError("system.discipline=agent_servers needs system.agent_capacity "
                              "(slots per agent server)")
        return AgentServers(agent_capacity)
    if name not in _PLAIN:
        raise ConfigError(f"unknown dispatch discipline {name!r} (config key "
                          f"'system.discipline'); known: {list(DISCIPLINES)}")
    return _PLAIN[name]()
