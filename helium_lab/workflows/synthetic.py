"""Synthetic-prompt MapRed and Debate of PAPER.md Fig. 10 (configs P1-P6).

A config fixes the system prompt, context, question and output lengths in tokens:

    P1 1024/128/128/64    P2 1024/512/512/256    P3 1024/1024/1024/512
    P4 2048/256/256/128   P5 2048/1024/1024/512  P6 2048/2048/2048/1024

Each agent has its own static system prompt of the config's length; a query's ``context``
and ``question`` inputs have exactly the config's lengths; every output is exactly the
config's output length (profile pinned, ``max_tokens`` set to it).

* ``synthetic_mapred(config="P1", experts=4)``: experts (system + context + question) ->
  summarizer (system + context + question + expert answers); ``experts + 1`` LLM ops.
* ``synthetic_debate(config="P1", agents=3, rounds=2)``: round 1 as an expert, later rounds
  continue the agent's conversation with the others' answers; ``agents * rounds`` LLM ops.
"""

from __future__ import annotations

from dataclasses import dataclass

from helium_lab.dsl import BoundGraph, LLMOp, Op, Workflow, history
from helium_lab.workflows.base import check_choice, check_int, finish, pinned
from helium_lab.workflows.text import QueryText, static_text


@dataclass(frozen=True)
class PromptConfig:
    """Token lengths of one Fig. 10 configuration."""

    system: int
    context: int
    question: int
    output: int


CONFIGS = {
    "P1": PromptConfig(1024, 128, 128, 64),
    "P2": PromptConfig(1024, 512, 512, 256),
    "P3": PromptConfig(1024, 1024, 1024, 512),
    "P4": PromptConfig(2048, 256, 256, 128),
    "P5": PromptConfig(2048, 1024, 1024, 512),
    "P6": PromptConfig(2048, 2048, 2048, 1024),
}


def _agent(wf: Workflow, name: str, role: str, cfg: PromptConfig, user: list[str | Op]) -> LLMOp:
    prof, sampling = pinned(cfg.output)
    system = static_text(f"{wf.name}/{cfg.system}/{role}", cfg.system, f"You are {role}.")
    return wf.llm([("system", system), ("user", user)], name=name, sampling=sampling,
                  profile=prof)


def _bindings(workflow: str, batch_size: int, seed: int, cfg: PromptConfig) -> dict[str, list[str]]:
    gen = QueryText(workflow, seed)
    return {"context": [gen.words(i, "context", cfg.context) for i in range(batch_size)],
            "question": [gen.words(i, "question", cfg.question) for i in range(batch_size)]}


def _config(workflow: str, config: str) -> PromptConfig:
    return CONFIGS[check_choice(workflow, "config", config, tuple(CONFIGS))]


def synthetic_mapred(*, batch_size: int, seed: int = 0, config: str = "P1",
                     experts: int = 4) -> BoundGraph:
    """MapRed over synthetic prompts of Fig. 10 config `config`."""
    wf = Workflow("synthetic_mapred")
    check_int(wf.name, "batch_size", batch_size)
    check_int(wf.name, "experts", experts)
    cfg = _config(wf.name, config)
    query: list[str | Op] = [wf.input("context"), "\n", wf.input("question")]
    team = [_agent(wf, f"expert{e}", f"expert {e}", cfg, query) for e in range(1, experts + 1)]
    answers: list[str | Op] = [p for op in team for p in ("\n", op)]
    wf.output("answer", _agent(wf, "summarizer", "the summarizer", cfg, [*query, *answers]))
    return finish(wf, _bindings(wf.name, batch_size, seed, cfg), batch_size=batch_size,
                  seed=seed, params={"config": config, "experts": experts})


def synthetic_debate(*, batch_size: int, seed: int = 0, config: str = "P1", agents: int = 3,
                     rounds: int = 2) -> BoundGraph:
    """Debate over synthetic prompts of Fig. 10 config `config`."""
    wf = Workflow("synthetic_debate")
    check_int(wf.name, "batch_size", batch_size)
    check_int(wf.name, "agents", agents)
    check_int(wf.name, "rounds", rounds)
    cfg = _config(wf.name, config)
    query: list[str | Op] = [wf.input("context"), "\n", wf.input("question")]
    ops = [_agent(wf, f"r1/agent{a}", f"agent {a}", cfg, query) for a in range(1, agents + 1)]
    prof, sampling = pinned(cfg.output)
    for r in range(2, rounds + 1):
        ops = [wf.llm([*history(own), ("user", [p for o in ops if o is not own
                                                for p in ("\n", o)])],
                      name=f"r{r}/agent{a + 1}", sampling=sampling, profile=prof)
               for a, own in enumerate(ops)]
    for a, op in enumerate(ops):
        wf.output(f"answer{a + 1}", op)
    return finish(wf, _bindings(wf.name, batch_size, seed, cfg), batch_size=batch_size,
                  seed=seed, params={"config": config, "agents": agents, "rounds": rounds})
