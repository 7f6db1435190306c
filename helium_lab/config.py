"""Typed, frozen configs built once from Hydra's DictConfig at the top of a run.

Library code takes these, never a DictConfig. Unknown keys are errors that name the key.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from helium_lab.errors import ConfigError
from helium_lab.optimizer import OptimizerConfig
from helium_lab.processor.config import ProcessorConfig
from helium_lab.scheduling import POLICIES
from helium_lab.scheduling.context import PartitionMode
from helium_lab.scheduling.refine import DEFAULT_MAX_EVALUATIONS as DEFAULT_REFINE_MAX_EVALUATIONS


def check_types(cfg: Any, where: str) -> None:
    """Raise ConfigError naming `where`.<field> (the field alone if `where` is empty) for a
    field of the dataclass instance `cfg` whose value does not have its annotated type:
    `bool` only True/False (not "no", not 1), `int` an integer (not a bool, not 2.5),
    `float` a number, `str` a string, `X | None` also None, `Literal[...]` one of its
    values. A field's `metadata={"min": m}` is a lower
    bound. Tuples, mappings and other types are left to the class's own checks."""
    hints = get_type_hints(type(cfg))
    for f in fields(cfg):
        value = getattr(cfg, f.name)
        hint = hints[f.name]
        args = get_args(hint)
        if get_origin(hint) in (UnionType, Union) and type(None) in args:
            if value is None:
                continue
            rest = [a for a in args if a is not type(None)]
            hint = rest[0] if len(rest) == 1 else hint
        problem = _type_problem(value, hint)
        if problem is None and "min" in f.metadata and value < f.metadata["min"]:
            problem = f"must be >= {f.metadata['min']}"
        if problem is not None:
            key = f"{where}.{f.name}" if where else f.name
            raise ConfigError(f"{key} {problem}, got {value!r}")


def _type_problem(value: Any, hint: Any) -> str | None:
    if hint is bool:
        return None if isinstance(value, bool) else "must be true or false"
    if hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        return None if ok else "must be an integer"
    if hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return None if ok else "must be a number"
    if hint is str:
        return None if isinstance(value, str) else "must be a string"
    if get_origin(hint) is Literal:
        return None if value in get_args(hint) else f"must be one of {list(get_args(hint))}"
    return None


def check_keys(cls: type, data: Mapping[str, Any], where: str) -> None:
    """Raise ConfigError naming `where` if `data` has keys `cls` (a dataclass) lacks."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; known: {sorted(known)}")


@dataclass(frozen=True)
class SystemConfig:
    """A system of the paper as a bundle of choices (DESIGN.md "systems are configs").

    `orchestration` holds the client's per-call costs (`Orchestration`), which the planner
    passes through untouched. A system's engine knobs (its queue order) are not here: the
    system's file sets them in the run's top-level `engine:` block, as defaults that the
    command line overrides (conf/system/base.yaml).

    `program`: the system's own client program, which the vLLM backend runs against vLLM
    API servers instead of driving in-process engines with the processor's dispatch
    (`runtime/programs`: `langgraph`); null = in-process. The simulator models the program
    through `discipline`, `router` and `orchestration` and ignores this key.
    """

    name: str
    passes: tuple[str, ...] = ("prune", "cse", "prompt_cache", "static_prefix")
    policy: str = "helium"
    router: str = "schedule"
    prewarm: bool = True
    retain_prefixes: bool = False
    max_inflight_per_worker: int = field(default=1024, metadata={"min": 1})
    max_inflight_total: int | None = field(default=None, metadata={"min": 1})
    max_inflight_per_op: int | None = field(default=None, metadata={"min": 1})
    discipline: str = "ready"
    agent_capacity: int | None = field(default=None, metadata={"min": 1})
    step_graph: bool = False
    program: str | None = None
    orchestration: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""

    @staticmethod
    def from_dict(data: Mapping[str, Any]) -> SystemConfig:
        check_keys(SystemConfig, data, f"system {data.get('name', '?')!r}")
        if "name" not in data:
            raise ConfigError("system config has no 'name'")
        d = dict(data)
        d["passes"] = tuple(d.get("passes") or ())
        cfg = SystemConfig(**d)
        check_types(cfg, "system")
        if cfg.policy not in POLICIES:
            raise ConfigError(f"system {cfg.name!r}: unknown policy {cfg.policy!r}; known: "
                              f"{sorted(POLICIES)}")
        OptimizerConfig.from_passes(cfg.passes)  # validates pass names
        cfg.processor("check")  # validates router, back-pressure and dispatch discipline
        return cfg

    def optimizer(self, static_prefix_min_tokens: int) -> OptimizerConfig:
        return OptimizerConfig.from_passes(self.passes, static_prefix_min_tokens)

    def processor(self, namespace: str, *, program_runs: bool = False) -> ProcessorConfig:
        """The processor's config. `program_runs`: the system's own client program decides
        when calls go (`program` on the vLLM backend), so the processor only renders: every
        call is emitted once its inputs are known (discipline `ready`, no in-flight limits),
        and the program, not the processor, holds calls back."""
        if program_runs:
            return ProcessorConfig(router="schedule", max_inflight_per_worker=1 << 30,
                                   prewarm=self.prewarm and "static_prefix" in self.passes,
                                   namespace=namespace)
        return ProcessorConfig(self.router, self.max_inflight_per_worker,
                               self.max_inflight_total, self.max_inflight_per_op,
                               self.prewarm and "static_prefix" in self.passes, namespace,
                               self.retain_prefixes, self.discipline, self.agent_capacity,
                               self.step_graph)


@dataclass(frozen=True)
class PlannerSettings:
    """The run's `planner:` block. `refine_max_evaluations` bounds the Helium policy's
    call-level refinement of small batches by work (evaluations of Eq. 5's T(σ)), not by
    time, so that a plan does not depend on the machine's speed. `partition`: how
    PartitionWorkflow splits the batch across workers (`even`: the reference's contiguous
    slices; `lpt`: by each query's estimated usage, our extension; scheduling/partition.py)."""

    static_prefix_min_tokens: int = field(default=200, metadata={"min": 1})
    prompt_cache_capacity: int = field(default=100_000, metadata={"min": 1})
    prompt_cache_path: str | None = None
    token_step_capacity: int = field(default=8192, metadata={"min": 1})
    alpha: Literal["unit", "inverse_capacity"] = "unit"
    # a number of T(σ) evaluations
    refine_max_evaluations: int = field(default=DEFAULT_REFINE_MAX_EVALUATIONS,
                                        metadata={"min": 1})
    partition: PartitionMode = "even"

    def __post_init__(self) -> None:
        check_types(self, "planner")

    @staticmethod
    def from_dict(data: Mapping[str, Any]) -> PlannerSettings:
        check_keys(PlannerSettings, data, "planner")
        return PlannerSettings(**data)


@dataclass(frozen=True)
class ModelSettings:
    """Which model the engines serve. `name` names the prompt-cache namespace; `path` is a
    local model folder for the vLLM backend (null: the backend's default for that name,
    e.g. `tiny` is built on first use); `shape` the transformer's shape from its
    config.json, which the simulator reads (`sim.models.ModelShape`; the planner passes it
    through untouched)."""

    name: str
    path: str | None = None
    shape: Mapping[str, Any] | None = None
    description: str = ""

    @staticmethod
    def from_dict(data: Mapping[str, Any]) -> ModelSettings:
        check_keys(ModelSettings, data, "model")
        if "name" not in data:
            raise ConfigError("model config has no 'name' (config key 'model.name')")
        cfg = ModelSettings(**data)
        check_types(cfg, "model")
        return cfg


QUEUE_ORDERS = ("fcfs", "priority", "lspf")
# SGLang's `hicache_write_policy` choices (server_args.py); sim/host_tier.py implements them
WRITE_POLICIES = ("write_through", "write_through_selective", "write_back")
HostLoad = Literal["inline", "deferred"]
PrewarmPin = Literal["soft", "hard", "none"]
KvEviction = Literal["lru", "steps_to_execution"]
HOST_LOADS: tuple[str, ...] = get_args(HostLoad)
PREWARM_PINS: tuple[str, ...] = get_args(PrewarmPin)
KV_EVICTIONS: tuple[str, ...] = get_args(KvEviction)


@dataclass(frozen=True)
class EngineSettings:
    """Engine knobs, named as in vLLM: the one settings type of both backends (DESIGN.md),
    read from the run's `engine:` block (conf/config.yaml, then the system's, model's and
    experiment's files, then the command line, each overriding key by key). The simulator
    adds only what an engine derives from them at start-up (`sim.EngineConfig`: its KV
    blocks, context length and host tier); vLLM derives those itself.

    Validated on construction: a bad value raises ConfigError naming `engine.<key>`.

    `kv_capacity_tokens` null = derived from the model and hardware memory at
    `gpu_memory_utilization`, as vLLM sizes it; `max_model_len` null = the model's.

    Host KV tier (simulator only, sim/host_tier.py; SGLang's HiCache): off while both
    `host_kv_tokens` and `host_kv_ratio` are null. `host_kv_ratio` sizes it as SGLang's
    `hicache_ratio` (x the GPU KV pool; SGLang's default 2.0), `host_kv_tokens` sets it
    (as `hicache_size`, which overrides the ratio). `host_kv_write_policy`: SGLang's
    `hicache_write_policy` (default `write_through`). `host_kv_load`: `inline` (SGLang:
    a host hit is loaded in the step that admits it) or `deferred` (KVFlow's fork: it is
    loaded beside the forward passes while its request waits; sim/host_loads.py).
    `host_kv_prefetch_steps`: KVFlow's prefetch (`load_ahead_step`): on each step-graph
    update, load back the host-only prefixes of agents at most this many steps from
    running (needs `host_kv_load: deferred` and a system with `step_graph: true`).

    `kv_eviction` (simulator only): which cached GPU blocks go first when blocks are
    needed: `lru` (vLLM's and SGLang's order) or `steps_to_execution` (KVFlow's fork with
    `--enable-holding`, sim/kv_holding.py: blocks of agents about to run are kept, by
    the step graph of a system with `step_graph: true`); `kv_hold_steps` is the fork's
    `evict_pri_level` (default 4): agents this many steps away or more are not held.

    `prewarm_pin` (both backends: sim/engine.py, runtime/pins.py on vLLM): how a prewarmed
    static prefix is kept: `soft` (Helium's proactive KV cache: evicted last, still free
    capacity), `hard` (vLLM with an extra reference: never evicted, at most half the
    blocks; kept to compare) or `none` (cached like any prefix). Retained dynamic
    prefixes (`retain_prefixes`) are soft-pinned in every mode.

    `engine_processes` (vLLM backend only, runtime/session.py): each worker's engine in a
    child process of its own, so that the workers' steps overlap (`true`), or all in the
    session's process, stepped one after another (`false`); null picks processes when
    there are several workers and a GPU (or, on CPU, a core) for each."""

    block_size: int = field(default=16, metadata={"min": 1})
    max_num_seqs: int = field(default=1024, metadata={"min": 1})
    max_num_batched_tokens: int = field(default=4096, metadata={"min": 1})
    kv_capacity_tokens: int | None = None
    gpu_memory_utilization: float = 0.9
    enable_prefix_caching: bool = True
    queue_order: str = "fcfs"
    max_model_len: int | None = field(default=None, metadata={"min": 1})
    host_kv_tokens: int | None = field(default=None, metadata={"min": 1})
    host_kv_ratio: float | None = None
    host_kv_write_policy: str = "write_through"
    host_kv_load: HostLoad = "inline"
    host_kv_prefetch_steps: int | None = field(default=None, metadata={"min": 0})
    prewarm_pin: PrewarmPin = "soft"
    kv_eviction: KvEviction = "lru"
    kv_hold_steps: int = field(default=4, metadata={"min": 1})
    engine_processes: bool | None = None

    def __post_init__(self) -> None:
        where = "engine"
        check_types(self, where)
        if self.queue_order not in QUEUE_ORDERS:
            raise ConfigError(f"{where}.queue_order: unknown {self.queue_order!r}; known: "
                              f"{list(QUEUE_ORDERS)}")
        if self.kv_capacity_tokens is not None and self.kv_capacity_tokens < self.block_size:
            raise ConfigError(f"{where}.kv_capacity_tokens={self.kv_capacity_tokens} is "
                              f"smaller than one block ({self.block_size} tokens)")
        if not 0 < self.gpu_memory_utilization <= 1:
            raise ConfigError(f"{where}.gpu_memory_utilization must be in (0, 1], got "
                              f"{self.gpu_memory_utilization}")
        if self.host_kv_write_policy not in WRITE_POLICIES:
            raise ConfigError(f"{where}.host_kv_write_policy: unknown "
                              f"{self.host_kv_write_policy!r}; known: {list(WRITE_POLICIES)}")
        if self.host_kv_tokens is not None and self.host_kv_tokens < self.block_size:
            raise ConfigError(f"{where}.host_kv_tokens={self.host_kv_tokens} is smaller than "
                              f"one block ({self.block_size} tokens)")
        if self.host_kv_ratio is not None and self.host_kv_ratio <= 0:
            raise ConfigError(f"{where}.host_kv_ratio must be > 0, got {self.host_kv_ratio}")
        if self.host_kv_load == "deferred" and not self.host_tier:
            raise ConfigError(f"{where}.host_kv_load=deferred loads from a host KV tier, but "
                              f"{where}.host_kv_tokens and {where}.host_kv_ratio are null")
        if self.host_kv_prefetch_steps is not None and self.host_kv_load != "deferred":
            raise ConfigError(f"{where}.host_kv_prefetch_steps={self.host_kv_prefetch_steps} "
                              f"prefetches with background loads: set {where}.host_kv_load="
                              "deferred")
        if self.host_tier and not self.enable_prefix_caching:
            key = "host_kv_tokens" if self.host_kv_tokens is not None else "host_kv_ratio"
            raise ConfigError(f"{where}.{key}: a host KV tier needs prefix caching, but "
                              f"{where}.enable_prefix_caching is false")

        if self.kv_eviction != "lru" and not self.enable_prefix_caching:
            raise ConfigError(f"{where}.kv_eviction={self.kv_eviction} orders the eviction of "
                              f"cached blocks, but {where}.enable_prefix_caching is false")

    def simulated_only(self) -> list[str]:
        """The keys set here that only the simulator implements (the host KV tier and
        workflow-aware eviction), in declaration order."""
        return [k for k, on in (("host_kv_tokens", self.host_kv_tokens is not None),
                                ("host_kv_ratio", self.host_kv_ratio is not None),
                                ("kv_eviction", self.kv_eviction != "lru")) if on]

    @property
    def host_tier(self) -> bool:
        return self.host_kv_tokens is not None or self.host_kv_ratio is not None

    @staticmethod
    def from_dict(data: Mapping[str, Any]) -> EngineSettings:
        """The run's engine block, validated; errors name `engine.<key>`."""
        check_keys(EngineSettings, data, "engine")
        return EngineSettings(**data)


@dataclass(frozen=True)
class Orchestration:
    """How a system's client reaches the engines (PAPER.md §8): `submit_overhead_s` is
    added between a call's emission and its arrival at the engine (a load balancer's
    89 us plus an HTTP round trip of 3.1 ms for the OpenAI-API baselines; 0 in-process).
    `client_*`: the CPU the client program spends per call in its one Python thread
    (`sim/client.py`; measured, docs/client_overhead.md): a fixed part per call and parts
    per prompt and per output token. The simulator serializes it; a real backend pays it
    for real, so there it is ignored. `server_*`: the CPU of the OpenAI API server process
    in front of the engines per request (`ServerCost` in `sim/client.py`; measured,
    docs/server_overhead.md), serialized in one process for all workers (`shared`) or one
    per worker (`per_worker`); also simulator only. `client_concurrency`: the client's
    fixed CPU per call with many calls in flight, as [calls in flight, s per call] points
    in increasing order (`ClientCost.concurrency` in sim/client.py; measured with held
    answers, docs/client_overhead.md part 4); empty, the default, keeps `client_call_s`
    at every concurrency. `client_model`: `serial` (that FIFO thread, the default) or
    `event_loop` (the program's asyncio loop and httpcore pool step by step,
    `sim/client_loop.py`; no curve then): its pool's keep-alive `client_keepalive_s` and
    pass cost `client_pass_s + client_pass_conn_s N + client_pass_idle_s I +
    client_pass_pair_s N I` (N connections, I idle; measured, docs/client_overhead.md
    part 2), and the program's path through its loop in iterations: an answer handled over
    `client_answer_hops`, its connection freed at hop `client_release_hop`, a request
    entering the pool `client_request_hops` after the workflow emits it (measured per
    program, `scripts/loop_depth.py`; 1, 1, 1 by default)."""

    submit_overhead_s: float = 0.0
    client_call_s: float = 0.0
    client_prompt_token_s: float = 0.0
    client_output_token_s: float = 0.0
    server_call_s: float = 0.0
    server_prompt_token_s: float = 0.0
    server_scope: Literal["shared", "per_worker"] = "shared"
    client_concurrency: tuple[tuple[float, float], ...] = ()
    client_model: Literal["serial", "event_loop"] = "serial"
    client_keepalive_s: float = 5.0  # httpx's keepalive_expiry, uvicorn's keep-alive
    client_pass_s: float = 0.0
    client_pass_conn_s: float = 0.0
    client_pass_idle_s: float = 0.0
    client_pass_pair_s: float = 0.0
    client_answer_hops: int = 1
    client_release_hop: int = 1
    client_request_hops: int = 1

    @staticmethod
    def from_dict(data: Mapping[str, Any], where: str = "system.orchestration") -> Orchestration:
        check_keys(Orchestration, data, where)
        data = dict(data)
        data["client_concurrency"] = _points(data.get("client_concurrency", ()),
                                             f"{where}.client_concurrency")
        cfg = Orchestration(**data)
        check_types(cfg, where)
        for key in ("submit_overhead_s", "client_call_s", "client_prompt_token_s",
                    "client_output_token_s", "server_call_s", "server_prompt_token_s",
                    "client_keepalive_s", "client_pass_s", "client_pass_conn_s",
                    "client_pass_idle_s", "client_pass_pair_s"):
            v = getattr(cfg, key)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
                raise ConfigError(f"{where}.{key} must be a number >= 0, got {v!r}")
        for key in ("client_answer_hops", "client_release_hop", "client_request_hops"):
            v = getattr(cfg, key)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"{where}.{key} must be an iteration count >= 1, got {v!r}")
        if cfg.client_release_hop > cfg.client_answer_hops:
            raise ConfigError(f"{where}.client_release_hop ({cfg.client_release_hop}) must be "
                              f"<= client_answer_hops ({cfg.client_answer_hops}): the "
                              f"connection is freed while the answer is handled")
        if cfg.client_model == "event_loop" and cfg.client_concurrency:
            raise ConfigError(f"{where}.client_concurrency: the event_loop client model "
                              f"charges the pool's passes instead of a curve; set "
                              f"client_concurrency: [] or client_model: serial")
        return cfg


def _points(value: Any, key: str) -> tuple[tuple[float, float], ...]:
    """[[x, y], ...] as a tuple of number pairs with x increasing above 1 and y >= 0."""
    if value is None or isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise ConfigError(f"{key} must be a list of [calls in flight, s per call] pairs, "
                          f"got {value!r}")
    points: list[tuple[float, float]] = []
    for i, pair in enumerate(value):
        if (isinstance(pair, (str, bytes)) or not isinstance(pair, Sequence) or len(pair) != 2
                or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in pair)):
            raise ConfigError(f"{key}[{i}] must be a [calls in flight, s per call] pair of "
                              f"numbers, got {pair!r}")
        n, cost = float(pair[0]), float(pair[1])
        if n <= (points[-1][0] if points else 1.0) or cost < 0:
            raise ConfigError(f"{key}[{i}] = {list(pair)}: calls in flight must increase "
                              f"from above 1 and the cost must be >= 0")
        points.append((n, cost))
    return tuple(points)
