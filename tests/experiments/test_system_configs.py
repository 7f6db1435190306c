"""Each system file resolves, through what it inherits, to what its comment says; the
command line beats a system's engine defaults; a broken system selection is named."""

from __future__ import annotations

import json
from typing import Any

import pytest

from experiments.compose import CONF_DIR, compose_once, system_settings
from experiments.workflow_run import RunSettings
from helium_lab.errors import ConfigError

PIPELINE = ("prune", "cse_functional", "prompt_cache", "static_prefix")
HTTP = 0.003189  # balancer 89 us + HTTP 3.1 ms (PAPER.md §8)
ASYNCOPENAI = (0.003902, 8.32e-08)  # conf/orchestration/client_overhead.json "openai"
LANGGRAPH = (0.0058404, 1.52e-07)  # ... "langgraph_mapred"
# the HTTP programs' event loop and pool: part 2's pass fit, httpx's 5-s keep-alive
POOL_FIT = json.loads((CONF_DIR / "orchestration" / "client_overhead.json").read_text())[
    "pool_fit"]
EVENT_LOOP = {"vllm", "opwise", "langgraph", "kvflow"}

# What each file's comment claims, in the resolved values it implies:
# (passes, policy, router, prewarm, retain_prefixes, discipline, max_inflight_total,
#  queue_order, submit_overhead_s, (client_call_s, client_prompt_token_s))
CLAIMS: dict[str, tuple[Any, ...]] = {
    "helium": (PIPELINE, "helium", "schedule", True, True, "ready", None, "priority", 0.0,
               (0.0, 0.0)),
    "helium_cse_llm": (("prune", "cse", "prompt_cache", "static_prefix"), "helium",
                       "schedule", True, True, "ready", None, "priority", 0.0, (0.0, 0.0)),
    "helium_cas": ((), "helium", "schedule", False, False, "ready", None, "priority", 0.0,
                   (0.0, 0.0)),
    "helium_no_cas": (PIPELINE, "random", "least_loaded", True, False, "ready", None, "fcfs",
                      0.0, (0.0, 0.0)),
    "helium_no_kv": (PIPELINE, "helium", "schedule", False, False, "ready", None, "priority",
                     0.0, (0.0, 0.0)),
    "helium_no_pc": (("prune", "cse_functional", "static_prefix"), "helium", "schedule", True,
                     True, "ready", None, "priority", 0.0, (0.0, 0.0)),
    "helium_no_pp": (("prompt_cache", "static_prefix"), "helium", "schedule", True, True,
                     "ready", None, "priority", 0.0, (0.0, 0.0)),
    "vllm": ((), "querywise", "least_loaded", False, False, "ready", 1, "fcfs", HTTP,
             ASYNCOPENAI),
    "opwise": ((), "opwise_pipeline", "least_loaded", False, False, "op_pipeline", None,
               "fcfs", HTTP, ASYNCOPENAI),
    "langgraph": ((), "in_order", "least_loaded", False, False, "supersteps", None, "fcfs",
                  HTTP, LANGGRAPH),
    "kvflow": (("static_prefix",), "in_order", "round_robin", True, False, "supersteps", None,
               "fcfs", HTTP, LANGGRAPH),
    "agentscope": ((), "random", "least_loaded", False, False, "agent_servers", None, "fcfs",
                   HTTP, (0.0, 0.0)),
    "parrot": ((), "random", "prefix_affinity", False, False, "ready", None, "fcfs", 0.0031,
               (0.0, 0.0)),
    "querywise": ((), "querywise", "schedule", False, False, "ready", None, "fcfs", 0.0,
                  (0.0, 0.0)),
    "random": ((), "random", "schedule", False, False, "ready", None, "fcfs", 0.0, (0.0, 0.0)),
    "lspf": ((), "lspf", "schedule", False, False, "ready", None, "lspf", 0.0, (0.0, 0.0)),
}


def test_every_system_file_has_its_claims_listed() -> None:
    files = {p.stem for p in (CONF_DIR / "system").glob("*.yaml")} - {"base"}
    assert files == set(CLAIMS)


@pytest.mark.parametrize("name", sorted(CLAIMS))
def test_system_resolves_to_what_its_comment_says(name: str) -> None:
    system, engine, orch = system_settings(name)
    got = (system.passes, system.policy, system.router, system.prewarm,
           system.retain_prefixes, system.discipline, system.max_inflight_total,
           engine.queue_order, orch.submit_overhead_s,
           (orch.client_call_s, orch.client_prompt_token_s))
    assert system.name == name
    assert got == CLAIMS[name]
    assert orch.client_concurrency == ()
    assert orch.client_model == ("event_loop" if name in EVENT_LOOP else "serial")
    if name in EVENT_LOOP:
        assert orch.client_keepalive_s == 5.0
        assert (orch.client_pass_s, orch.client_pass_conn_s, orch.client_pass_idle_s,
                orch.client_pass_pair_s) == pytest.approx(tuple(
                    POOL_FIT[k] * 1e-6 for k in ("c0_us", "c_conn_us", "c_idle_us",
                                                 "c_pair_us")))
    assert system.agent_capacity == (32 if name == "agentscope" else None)
    assert system.max_inflight_per_worker == 1024 and system.max_inflight_per_op is None
    # the programs that run for real on the vLLM backend (KVFlow's needs SGLang's fork)
    assert system.program == {"langgraph": "langgraph", "vllm": "querywise",
                              "opwise": "opwise"}.get(name)
    # only KVFlow runs a host KV tier (HiCache at helium_demo's runner settings)
    assert (engine.host_kv_ratio, engine.host_kv_write_policy) == (
        (1.001, "write_through") if name == "kvflow" else (None, "write_through"))


@pytest.mark.parametrize("name", ["helium", "lspf", "langgraph"])
def test_command_line_engine_key_beats_the_system_default(name: str) -> None:
    _, engine, _ = system_settings(name, ["engine.queue_order=fcfs"])
    assert engine.queue_order == "fcfs"
    _, engine, _ = system_settings(name, ["+experiment=debate", "engine.queue_order=lspf"])
    assert engine.queue_order == "lspf"


def test_command_line_system_key_beats_what_the_system_inherits() -> None:
    system, _, orch = system_settings("kvflow", ["system.router=least_loaded",
                                                 "system.orchestration.client_call_s=0"])
    assert system.router == "least_loaded" and orch.client_call_s == 0
    assert orch.client_prompt_token_s == LANGGRAPH[1]  # the rest of the mixin stays


def test_the_base_is_not_a_system() -> None:
    with pytest.raises(ConfigError, match="no 'name'"):
        system_settings("base")


def test_an_unknown_system_is_named() -> None:
    with pytest.raises(ConfigError, match="fastest"):
        compose_once(["system=fastest"])


def test_cli_override_reaches_the_run_settings() -> None:
    """What a workflow run builds from the resolved config (RunSettings) has the command
    line's queue order, not the system's."""
    cfg = compose_once(["+experiment=debate", "system=helium", "engine.queue_order=fcfs"])
    assert RunSettings.from_cfg(cfg).engine.queue_order == "fcfs"
    cfg = compose_once(["+experiment=debate", "system=helium"])
    assert RunSettings.from_cfg(cfg).engine.queue_order == "priority"
