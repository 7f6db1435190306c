"""The LangGraph baseline as its reference program runs it, compiled from any workflow.

helium_demo's `bench_programs/<workflow>/langgraph.py` (with `utils/langgraph.py`) builds a
`StateGraph` with one node per LLM op, edges from the workflow's data dependencies, and
runs every query at once with `await graph.compile().abatch(inputs)`; each node calls
`await ChatOpenAI(...).ainvoke(messages)` over an `httpx.AsyncClient` with unlimited
connections (`utils/common.py`: DEFAULT_LIMITS, DEFAULT_TIMEOUT). This module builds that
program for a planned workflow:

- nodes: the plan graph's LLM ops; a node's edges come from the nearest LLM ops it reads
  (through Format/Data/Lambda ops, which the planner evaluates); an op reading several
  joins them (`add_edge([a, b], node)`: it runs once, after all), one reading none starts
  at START. The state is the query index and the outputs written so far. LangGraph runs
  each query's graph in supersteps: a step starts when every task of the previous one
  finished (what the simulator models as `discipline: supersteps`).
- a node takes its call from the processor and sends it with `ChatOpenAI.ainvoke`
  (`base.ClientProgram.execute`: sampling, measurement extras, records).
- LangGraph's recursion limit (25 supersteps by default) is raised to the graph's depth
  plus a margin: the reference workflows are shallower than ours can be.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Annotated, Any, TypedDict

from helium_lab.dsl.graph import Graph
from helium_lab.processor.calls import LLMCall
from helium_lab.processor.discipline import llm_levels
from helium_lab.processor.step_graph import agent_predecessors
from runtime.programs.base import ClientProgram, ProgramRun, Reply

RECURSION_MARGIN = 10


class QueryState(TypedDict):
    query: int
    outputs: Annotated[dict[str, str], operator.or_]


def llm_inputs(graph: Graph) -> dict[str, tuple[str, ...]]:
    """For each LLM op, the nearest LLM ops it reads (directly or through non-LLM ops:
    KVFlow's agent predecessors), in the graph's order."""
    pos = {oid: i for i, oid in enumerate(graph.order)}
    preds = agent_predecessors(graph)
    return {op.id: tuple(sorted(preds[op.id], key=pos.__getitem__)) for op in graph.llm_ops}


def build_graph(graph: Graph, node: Callable[[str], Any]) -> Any:
    """The `StateGraph` of `graph`'s LLM ops; `node(op_id)` makes each node's coroutine."""
    from langgraph.graph import START, StateGraph

    builder = StateGraph(QueryState)
    for op_id, preds in llm_inputs(graph).items():
        builder.add_node(op_id, node(op_id))
        if not preds:
            builder.add_edge(START, op_id)
        elif len(preds) == 1:
            builder.add_edge(preds[0], op_id)
        else:
            builder.add_edge(list(preds), op_id)
    return builder


class LangGraphProgram(ClientProgram):
    """`abatch` over the queries of one planned workflow; `client` is a `ChatOpenAI`."""

    def _node(self, op_id: str) -> Callable[[QueryState], Any]:
        async def node(state: QueryState) -> dict[str, Any]:
            text = await self.execute_op(op_id, state["query"])
            return {} if text is None else {"outputs": {op_id: text}}

        node.__name__ = f"llm_{op_id}"
        return node

    async def send(self, call: LLMCall, extra_body: dict[str, Any]) -> Reply:
        from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

        kinds: dict[str, Callable[[str], Any]] = {
            "system": SystemMessage, "user": HumanMessage, "assistant": AIMessage,
            "tool": lambda text: ToolMessage(text, tool_call_id="tool")}
        reply = await self.client.ainvoke(
            [kinds[role](text) for role, text in call.messages],
            max_completion_tokens=call.output_tokens, extra_body=extra_body)
        usage = reply.response_metadata.get("token_usage") or {}
        cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens")
        return Reply(str(reply.content), int(cached or 0))

    async def run(self, num_queries: int) -> ProgramRun:
        """Run every query through the compiled graph (`abatch`, no concurrency limit)."""
        app = build_graph(self.graph, self._node).compile()
        depth = max(llm_levels(self.graph).values(), default=0)
        self.broker.start()
        await app.abatch([{"query": q, "outputs": {}} for q in range(num_queries)],
                         config={"recursion_limit": max(25, depth + RECURSION_MARGIN)})
        return self.run_state
