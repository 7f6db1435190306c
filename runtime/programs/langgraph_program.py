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
  at START. The state is the query index and the outputs written so far.
- a node asks the `CallBroker` for its call (prompt, output length: the planner's, so
  outputs are comparable with every other system) and sends its chat messages through
  `ChatOpenAI.ainvoke`, with the sampling the in-process engines use (temperature 0,
  `max_completion_tokens` = the call's output length, vLLM's `ignore_eos`), plus vLLM
  extensions the reference does not send, for measurement only: `request_id` (to match the
  response), `return_token_ids` and `skip_special_tokens: false` (the output is the decoded
  token ids, decoded as the in-process engines decode, so outputs compare byte for byte).
- LangGraph's recursion limit (25 supersteps by default) is raised to the graph's depth
  plus a margin: the reference workflows are shallower than ours can be.

What the program measures per call: send and receive time on the session clock (HTTP
cannot see when the engine scheduled it: `start_t` = send, `first_token_t` = receive),
the cached prompt tokens vLLM reports (`usage.prompt_tokens_details.cached_tokens`), the
server the balancer chose, and whether the server's prompt token ids equal the planner's
(`prompt_mismatches`; the chat template re-tokenizes the whole text, the planner tokenizes
piece by piece).
"""

from __future__ import annotations

import operator
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Annotated, Any, TypedDict

from helium_lab.dsl.graph import Graph
from helium_lab.dsl.ops import LLMOp
from helium_lab.processor.calls import CallRecord, CallResult, LLMCall
from helium_lab.processor.discipline import llm_levels
from helium_lab.tokenizer import Tokenizer
from runtime.programs.balancer import ShortestQueueTransport
from runtime.programs.broker import CallBroker

RECURSION_MARGIN = 10


class QueryState(TypedDict):
    query: int
    outputs: Annotated[dict[str, str], operator.or_]


def llm_inputs(graph: Graph) -> dict[str, tuple[str, ...]]:
    """For each LLM op, the nearest LLM ops it reads (directly or through non-LLM ops),
    in the graph's order."""
    near: dict[str, set[str]] = {}
    for oid in graph.order:
        op = graph.ops[oid]
        got: set[str] = set()
        for d in op.inputs():
            got |= {d} if isinstance(graph.ops[d], LLMOp) else near[d]
        near[oid] = got
    pos = {oid: i for i, oid in enumerate(graph.order)}
    return {op.id: tuple(sorted(near[op.id], key=pos.__getitem__)) for op in graph.llm_ops}


@dataclass
class ProgramRun:
    """What one run of a program produced, besides the processor's own state."""

    records: list[CallRecord] = field(default_factory=list)
    # per server: calls whose prompt ids the server tokenized differently from the planner,
    # and calls whose reply text differs from the decoded token ids (vLLM's incremental
    # detokenizer at split UTF-8 sequences; the program keeps the decoded ids)
    prompt_mismatches: Counter[int] = field(default_factory=Counter)
    output_mismatches: Counter[int] = field(default_factory=Counter)


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


class LangGraphProgram:
    """`abatch` over the queries of one planned workflow (see the module docstring)."""

    def __init__(self, graph: Graph, broker: CallBroker, llm: Any,
                 transport: ShortestQueueTransport, tokenizer: Tokenizer,
                 clock: Callable[[], float], on_progress: Callable[[], None] | None = None
                 ) -> None:
        self.graph, self.broker, self.llm = graph, broker, llm
        self.transport, self.tok, self.clock = transport, tokenizer, clock
        self.on_progress = on_progress
        self.run_state = ProgramRun()

    def _node(self, op_id: str) -> Callable[[QueryState], Any]:
        async def node(state: QueryState) -> dict[str, Any]:
            q = state["query"]
            if not self.broker.runs(op_id, q):
                return {}
            call = await self.broker.call(op_id, q)
            text = await self._invoke(call)
            return {"outputs": {op_id: text}}

        node.__name__ = f"llm_{op_id}"
        return node

    async def _invoke(self, call: LLMCall) -> str:
        from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

        kinds: dict[str, Callable[[str], Any]] = {
            "system": SystemMessage, "user": HumanMessage, "assistant": AIMessage,
            "tool": lambda text: ToolMessage(text, tool_call_id="tool")}
        messages = [kinds[role](text) for role, text in call.messages]
        rid = f"helium-lab-{call.call_id}"
        sent = self.clock()
        reply = await self.llm.ainvoke(
            messages, max_completion_tokens=call.output_tokens,
            extra_body={"ignore_eos": True, "skip_special_tokens": False,
                        "return_token_ids": True, "request_id": rid})
        done = self.clock()
        server, body = self.transport.take(rid) or (-1, {})
        out_ids = tuple(body.get("choices", [{}])[0].get("token_ids") or ())
        if tuple(body.get("prompt_token_ids") or ()) != call.prompt_ids:
            self.run_state.prompt_mismatches[server] += 1
        text = self.tok.decode(out_ids)
        if text != reply.content:
            self.run_state.output_mismatches[server] += 1
        usage = (reply.response_metadata.get("token_usage") or {})
        cached = int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
        result = CallResult(call.call_id, text, out_ids, sent, sent, done, done, cached)
        self.run_state.records.append(replace(CallRecord.of(call, result), worker=server))
        self.broker.finished(result)
        if self.on_progress is not None:
            self.on_progress()
        return text

    async def run(self, num_queries: int) -> ProgramRun:
        """Run every query through the compiled graph (`abatch`, no concurrency limit)."""
        app = build_graph(self.graph, self._node).compile()
        depth = max(llm_levels(self.graph).values(), default=0)
        self.broker.start()
        await app.abatch([{"query": q, "outputs": {}} for q in range(num_queries)],
                         config={"recursion_limit": max(25, depth + RECURSION_MARGIN)})
        return self.run_state
