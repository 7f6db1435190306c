"""What every client program shares: sending one planned call to the servers and
recording what came back.

A program (LangGraph's, QueryWise's, OpWise's) decides *when* each call goes; `send` is
how its client library sends it (ChatOpenAI or AsyncOpenAI, both over the same httpx
client and `ShortestQueueTransport`). `execute(call)`:

- sends the call's chat messages with the in-process engines' sampling (temperature 0,
  `max_completion_tokens` = the call's output length, vLLM's `ignore_eos`), plus, for
  measurement only, vLLM's `request_id`, `return_token_ids` and
  `skip_special_tokens: false`;
- keeps the decoded output token ids as the output (the in-process engines' decoding),
  counts per server the prompts the server tokenized differently from the planner and the
  replies whose text differs from the decoded ids;
- records send and receive on the session clock, vLLM's cached tokens and the server that
  answered, and hands the result to the processor (`CallBroker.finished`), which renders
  the calls it unblocks.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from helium_lab.dsl.graph import Graph
from helium_lab.processor.calls import CallRecord, CallResult, LLMCall
from helium_lab.tokenizer import Tokenizer
from runtime.programs.balancer import ShortestQueueTransport
from runtime.programs.broker import CallBroker

VLLM_EXTRAS = {"ignore_eos": True, "skip_special_tokens": False, "return_token_ids": True}


@dataclass
class ProgramRun:
    """What one run of a program produced, besides the processor's own state."""

    records: list[CallRecord] = field(default_factory=list)
    # per server: calls whose prompt ids the server tokenized differently from the planner,
    # and calls whose reply text differs from the decoded token ids (vLLM's incremental
    # detokenizer at split UTF-8 sequences; the program keeps the decoded ids)
    prompt_mismatches: Counter[int] = field(default_factory=Counter)
    output_mismatches: Counter[int] = field(default_factory=Counter)


@dataclass(frozen=True)
class Reply:
    """A client library's answer to one call: its text and vLLM's cached prompt tokens."""

    text: str
    cached_tokens: int


class ClientProgram:
    """A client program over a planned workflow (subclasses: `run` and `send`)."""

    def __init__(self, graph: Graph, broker: CallBroker, client: Any,
                 transport: ShortestQueueTransport, tokenizer: Tokenizer,
                 clock: Callable[[], float], *, model: str = "",
                 on_progress: Callable[[], None] | None = None) -> None:
        """`client`: the library's client (ChatOpenAI, AsyncOpenAI) over `transport`;
        `model`: the served model name requests carry."""
        self.graph, self.broker, self.client, self.model = graph, broker, client, model
        self.transport, self.tok, self.clock = transport, tokenizer, clock
        self.on_progress = on_progress
        self.run_state = ProgramRun()

    async def run(self, num_queries: int) -> ProgramRun:
        """Run every query of the batch; return what was recorded."""
        raise NotImplementedError

    async def send(self, call: LLMCall, extra_body: dict[str, Any]) -> Reply:
        """Send `call` through the program's client library."""
        raise NotImplementedError

    async def execute(self, call: LLMCall) -> str:
        """Send `call`, record it, feed the processor; returns the output text."""
        rid = f"helium-lab-{call.call_id}"
        sent = self.clock()
        reply = await self.send(call, {**VLLM_EXTRAS, "request_id": rid})
        done = self.clock()
        server, body = self.transport.take(rid) or (-1, {})
        out_ids = tuple(body.get("choices", [{}])[0].get("token_ids") or ())
        if tuple(body.get("prompt_token_ids") or ()) != call.prompt_ids:
            self.run_state.prompt_mismatches[server] += 1
        text = self.tok.decode(out_ids)
        if text != reply.text:
            self.run_state.output_mismatches[server] += 1
        result = CallResult(call.call_id, text, out_ids, sent, sent, done, done,
                            reply.cached_tokens)
        self.run_state.records.append(replace(CallRecord.of(call, result), worker=server))
        self.broker.finished(result)
        if self.on_progress is not None:
            self.on_progress()
        return text

    async def execute_op(self, op: str, query: int) -> str | None:
        """The call of `op` for `query`, once the processor rendered it (None: the run
        issues no such call)."""
        if not self.broker.runs(op, query):
            return None
        return await self.execute(await self.broker.call(op, query))


class OpenAIProgram(ClientProgram):
    """Programs calling `AsyncOpenAI.chat.completions.create` (helium_demo
    `utils/openai.py::openai_generate_async`)."""

    async def send(self, call: LLMCall, extra_body: dict[str, Any]) -> Reply:
        response = await self.client.chat.completions.create(
            model=self.model, temperature=0,
            messages=[{"role": role, "content": text} for role, text in call.messages],
            max_completion_tokens=call.output_tokens, extra_body=extra_body)
        details = getattr(response.usage, "prompt_tokens_details", None)
        return Reply(response.choices[0].message.content or "",
                     int(getattr(details, "cached_tokens", 0) or 0))
