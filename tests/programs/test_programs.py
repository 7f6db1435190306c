"""The client programs (LangGraph's, QueryWise's, OpWise's) over a planned workflow, run
against a fake chat model: every issued call runs exactly once, each program's dispatch
order holds (LangGraph's supersteps, QueryWise one call at a time, OpWise's stages), and
the outputs equal the echo backend's (the same calls, whoever orders them)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from experiments.compose import system_settings
from helium_lab.config import PlannerSettings
from helium_lab.pipeline import plan_batch
from helium_lab.processor import QueryProcessor
from helium_lab.processor.calls import LLMCall, synthetic_completion
from helium_lab.processor.discipline import llm_levels
from helium_lab.processor.echo_engine import run_echo
from helium_lab.tokenizer import SyntheticTokenizer
from helium_lab.workflows import make_workload
from runtime.programs.base import ClientProgram
from runtime.programs.broker import CallBroker
from runtime.programs.langgraph_program import LangGraphProgram, llm_inputs
from runtime.programs.openai_programs import OpWiseProgram, QueryWiseProgram, stage_order


class EchoTokenizer(SyntheticTokenizer):
    """Decodes the ids of the echo engine's completions back to their text (the
    synthetic tokenizer hashes words, so it cannot decode on its own)."""

    def __init__(self) -> None:
        super().__init__()
        self.texts: dict[tuple[int, ...], str] = {}

    def decode(self, ids: Any) -> str:
        return self.texts[tuple(ids)]


TOK = EchoTokenizer()


def plan(workflow: str, system: str = "langgraph", batch_size: int = 3,
         **params: Any) -> QueryProcessor:
    """The system's plan with a rendering-only processor, as a program run gets it."""
    sysc = system_settings(system)[0]
    bound = make_workload(workflow, batch_size=batch_size, seed=0, **params)
    planned = plan_batch(bound, sysc, PlannerSettings(), 2, TOK, namespace="t", seed=0)
    return QueryProcessor(planned.plan, planned.schedule, TOK,
                          sysc.processor("t", program_runs=True))


@dataclass
class Reply:
    content: str
    response_metadata: dict[str, Any] = field(default_factory=dict)


class FakeEngine:
    """Both the chat model (`ainvoke`) and the transport (`take`): answers each call with
    the echo engine's output after yielding to the loop, and logs start/finish events."""

    def __init__(self, broker: CallBroker) -> None:
        self.calls: dict[str, LLMCall] = {}
        self.events: list[tuple[str, str, int]] = []  # (start|finish, op, query)
        self.bodies: dict[str, dict[str, Any]] = {}
        original = broker.call

        async def spy(op: str, query: int) -> LLMCall:
            call = await original(op, query)
            self.calls[f"helium-lab-{call.call_id}"] = call
            return call

        broker.call = spy  # type: ignore[method-assign]

    async def ainvoke(self, messages: list[Any], *, max_completion_tokens: int,
                      extra_body: dict[str, Any]) -> Reply:
        rid = extra_body["request_id"]
        call = self.calls[rid]
        assert max_completion_tokens == call.output_tokens
        assert [m.content for m in messages] == [t for _, t in call.messages]
        self.events.append(("start", call.op, call.query))
        for _ in range(1 + sum(map(ord, call.op)) % 7):  # durations differ per op
            await asyncio.sleep(0)
        text, ids = synthetic_completion(call, TOK)
        TOK.texts[tuple(ids)] = text
        self.events.append(("finish", call.op, call.query))
        self.bodies[rid] = {"prompt_token_ids": list(call.prompt_ids),
                            "choices": [{"token_ids": list(ids)}]}
        return Reply(text, {"token_usage": {"prompt_tokens_details": {"cached_tokens": 7}}})

    def take(self, rid: str) -> tuple[int, dict[str, Any]] | None:
        return 1, self.bodies.pop(rid)

    @property
    def chat(self) -> Any:  # AsyncOpenAI's shape: client.chat.completions.create(...)
        return SimpleNamespace(completions=SimpleNamespace(create=self.create))

    async def create(self, *, model: str, temperature: float, messages: list[dict[str, str]],
                     max_completion_tokens: int, extra_body: dict[str, Any]) -> Any:
        wrapped = [SimpleNamespace(content=m["content"]) for m in messages]
        reply = await self.ainvoke(wrapped, max_completion_tokens=max_completion_tokens,
                                   extra_body=extra_body)
        details = SimpleNamespace(cached_tokens=7)
        return SimpleNamespace(
            choices=[SimpleNamespace(message=SimpleNamespace(content=reply.content))],
            usage=SimpleNamespace(prompt_tokens_details=details))


def run_program(proc: QueryProcessor, kind: type[ClientProgram] = LangGraphProgram
                ) -> tuple[FakeEngine, Any]:
    broker = CallBroker(proc, lambda: proc.issued)
    fake = FakeEngine(broker)
    ticks = iter(range(1_000_000))
    program = kind(proc.graph, broker, fake, fake, TOK,  # type: ignore[arg-type]
                   lambda: float(next(ticks)))
    ran = asyncio.run(program.run(proc.plan.size))
    return fake, ran


PROGRAMS = {"langgraph": LangGraphProgram, "vllm": QueryWiseProgram, "opwise": OpWiseProgram}


@pytest.mark.parametrize("system", sorted(PROGRAMS))
@pytest.mark.parametrize("workflow", ["debate", "reflect", "parallel", "iterative",
                                      "mapred_mmlu"])
def test_every_call_runs_once_and_outputs_match_the_echo_backend(workflow: str,
                                                                 system: str) -> None:
    proc = plan(workflow, system)
    fake, ran = run_program(proc, PROGRAMS[system])
    starts = [(op, q) for kind, op, q in fake.events if kind == "start"]
    assert len(starts) == len(set(starts)) == len(proc.issued) > 0
    assert set(starts) == proc.issued and proc.done
    assert not ran.prompt_mismatches and not ran.output_mismatches
    assert len(ran.records) == len(starts)
    assert {r.worker for r in ran.records} == {1} and {r.cached_tokens for r in ran.records} == {7}
    echo = plan(workflow, system)
    run_echo(echo, TOK)
    assert proc.outputs() == echo.outputs()


def test_supersteps_hold_per_query() -> None:
    """A call of LLM depth d starts only after every call of depth d-1 of its query
    finished, including those it does not read (reflect: a critic's extraction reads one
    critique but waits for the whole step), while call durations differ per op."""
    proc = plan("reflect", batch_size=2)
    level = llm_levels(proc.graph)
    reads = llm_inputs(proc.graph)
    assert any(set(reads[op]) < {o for o, lv in level.items() if lv == level[op] - 1}
               for op in reads if level[op] > 1)  # the step is more than the data edges
    fake, _ = run_program(proc)
    done: set[tuple[str, int]] = set()
    for kind, op, q in fake.events:
        if kind == "finish":
            done.add((op, q))
            continue
        below = {(o, q) for o, lv in level.items() if lv == level[op] - 1}
        assert below <= done, (op, q)


def test_edges_follow_the_nearest_llm_ops() -> None:
    proc = plan("debate")
    inputs = llm_inputs(proc.graph)
    level = llm_levels(proc.graph)
    for op, preds in inputs.items():
        if level[op] == 1:
            assert preds == ()
        else:
            assert preds and all(level[p] == level[op] - 1 for p in preds)


def test_querywise_runs_one_call_at_a_time_in_program_order() -> None:
    proc = plan("reflect", "vllm", batch_size=2)
    fake, _ = run_program(proc, QueryWiseProgram)
    kinds = [k for k, _, _ in fake.events]
    assert kinds == ["start", "finish"] * (len(kinds) // 2)  # never two in flight
    order = [op.id for op in proc.graph.llm_ops]
    starts = [(q, op) for k, op, q in fake.events if k == "start"]
    assert starts == sorted(starts, key=lambda s: (s[0], order.index(s[1])))


def test_opwise_runs_each_query_through_the_stages_in_turn() -> None:
    """Per query: one call at a time, in stage order (depth, then build order); across
    queries calls overlap."""
    proc = plan("parallel", "opwise", batch_size=3)
    fake, _ = run_program(proc, OpWiseProgram)
    stages = stage_order(proc.graph)
    for q in range(3):
        mine = [(k, op) for k, op, qq in fake.events if qq == q]
        assert [k for k, _ in mine] == ["start", "finish"] * len(stages)
        assert [op for k, op in mine if k == "start"] == stages
    in_flight = peak = 0
    for k, _, _ in fake.events:
        in_flight += 1 if k == "start" else -1
        peak = max(peak, in_flight)
    assert peak > 1
