"""Knobs of the query processor: routing and back-pressure."""

from __future__ import annotations

from dataclasses import dataclass

from helium_lab.errors import ConfigError
from helium_lab.processor.discipline import make_discipline

ROUTERS = ("schedule", "least_loaded", "prefix_affinity", "round_robin")


@dataclass(frozen=True)
class ProcessorConfig:
    """`router`: who picks a call's worker — the schedule's partition, a queue-length
    balancer, prefix affinity (Parrot) or round robin. Back-pressure: at most
    `max_inflight_per_worker` calls outstanding per worker, `max_inflight_total` overall
    (1 models the vLLM baseline's one-call-at-a-time client), `max_inflight_per_op` per op.
    `namespace` keys the prompt cache.
    `retain_prefixes`: hint engines to keep each call's prompt prefix that a later call of
    the same query extends (`LLMCall.retain`); only with the schedule's placement.
    `discipline`: when the client lets a ready call go (`discipline.py`: `ready`,
    `op_pipeline` for OpWise, `agent_servers` for AgentScope with `agent_capacity` slots
    per agent server).
    `step_graph`: keep KVFlow's agent step graph and report its changes
    (`step_graph.py`) for the engines' prefetch."""

    router: str = "schedule"
    max_inflight_per_worker: int = 1024
    max_inflight_total: int | None = None
    max_inflight_per_op: int | None = None
    prewarm: bool = True
    namespace: str = "default"
    retain_prefixes: bool = False
    discipline: str = "ready"
    agent_capacity: int | None = None
    step_graph: bool = False

    def __post_init__(self) -> None:
        if self.router not in ROUTERS:
            raise ConfigError(f"unknown router {self.router!r}; known: {list(ROUTERS)}")
        make_discipline(self.discipline, self.agent_capacity)  # validates both keys
        for key in ("max_inflight_per_worker", "max_inflight_total", "max_inflight_per_op"):
            v = getattr(self, key)
            if v is not None and v < 1:
                raise ConfigError(f"processor.{key} must be >= 1, got {v}")
