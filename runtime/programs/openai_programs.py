"""The baselines that call `AsyncOpenAI` directly, as their reference programs run them.

- `QueryWiseProgram` (helium_demo `bench_programs/<wf>/querywise.py` with
  `utils/openai.py::BATCH_SIZE = 1`): the queries in batches of `batch_size` (1), a batch's
  queries gathered, each query's calls awaited one after another in program order (the
  graph's topological order), parallel branches included. Config: `vllm.yaml`.
- `OpWiseProgram` (`utils/opwise.py::WorkflowDAG.execute`): the LLM ops linearized in one
  topological order (networkx's generations: LLM depth, then build order); op k is a stage
  reading op k-1's output queue and starting a task per query as it arrives (no limit); a
  query enters stage 0 at once. So each query runs its calls strictly one after another
  while queries overlap. Config: `opwise.yaml`.
"""

from __future__ import annotations

import asyncio

from helium_lab.dsl.graph import Graph
from helium_lab.processor.discipline import llm_levels
from runtime.programs.base import OpenAIProgram, ProgramRun

BATCH_SIZE = 1  # helium_demo utils/openai.py


def program_order(graph: Graph) -> list[str]:
    """The LLM ops in the graph's topological (build) order."""
    return [op.id for op in graph.llm_ops]


def stage_order(graph: Graph) -> list[str]:
    """The LLM ops as networkx's topological generations order them: depth, then build."""
    level = llm_levels(graph)
    return sorted(program_order(graph), key=level.__getitem__)


class QueryWiseProgram(OpenAIProgram):
    """One query at a time (batches of `BATCH_SIZE`), its calls in turn."""

    batch_size = BATCH_SIZE

    async def _query(self, q: int) -> None:
        for op in program_order(self.graph):
            await self.execute_op(op, q)

    async def run(self, num_queries: int) -> ProgramRun:
        self.broker.start()
        for first in range(0, num_queries, self.batch_size):
            last = min(first + self.batch_size, num_queries)
            await asyncio.gather(*(self._query(q) for q in range(first, last)))
        return self.run_state


class OpWiseProgram(OpenAIProgram):
    """A pipeline of one stage per LLM op; queries flow through it one stage at a time."""

    async def _stage(self, op: str, inbox: asyncio.Queue[int | None],
                     outbox: asyncio.Queue[int | None]) -> None:
        tasks: list[asyncio.Task[None]] = []

        async def handle(q: int) -> None:
            await self.execute_op(op, q)
            await outbox.put(q)

        while (q := await inbox.get()) is not None:
            tasks.append(asyncio.create_task(handle(q)))
        await asyncio.gather(*tasks)
        await outbox.put(None)

    async def run(self, num_queries: int) -> ProgramRun:
        self.broker.start()
        ops = stage_order(self.graph)
        queues: list[asyncio.Queue[int | None]] = [asyncio.Queue() for _ in range(len(ops) + 1)]
        stages = [asyncio.create_task(self._stage(op, queues[k], queues[k + 1]))
                  for k, op in enumerate(ops)]
        for q in range(num_queries):
            await queues[0].put(q)
        await queues[0].put(None)
        while await queues[-1].get() is not None:
            pass
        await asyncio.gather(*stages)
        return self.run_state
