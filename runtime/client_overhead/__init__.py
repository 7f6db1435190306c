"""Per-call CPU cost of the baselines' Python client stacks, measured against a mock server.

The OpenAI-API baselines (QueryWise/"vLLM", OpWise, LangGraph, KVFlow; docs/systems.md) run
one Python client process that sends every LLM call over HTTP to vLLM's OpenAI server;
Helium calls in-process engines. This benchmark measures what one call costs *the client
process* in CPU time — work that is serialized in that one process, whatever the engines do
— for three stacks, as the reference programs (HD `benchmark/bench_programs/`) build them:

- ``httpx``: a bare ``httpx.AsyncClient.post`` of the same JSON and ``response.json()``:
  the floor (HTTP/1.1 + JSON, no SDK);
- ``openai``: ``openai.AsyncOpenAI(http_client=httpx.AsyncClient(limits=unlimited))``,
  ``await client.chat.completions.create(...)`` per call, all calls as concurrent tasks
  (HD ``utils/openai.py``; OpWise, QueryWise);
- ``langgraph_mapred`` / ``langgraph_chain``: a compiled ``StateGraph`` whose nodes each
  ``await ChatOpenAI(...).ainvoke(messages)`` (langchain-openai over the same httpx limits,
  HD ``utils/langgraph.py``), run as ``await graph.abatch(items)`` with no
  ``max_concurrency`` (LangGraph, KVFlow). MapRed: ``k`` parallel experts then one
  summarizer per item, the state holding each expert's message list (HD
  ``map_reduce/langgraph.py``); chain: ``k + 1`` nodes in a line, each prompt carrying the
  previous answer.

The server is a minimal asyncio HTTP/1.1 server in a separate process on 127.0.0.1 that
answers ``POST /v1/chat/completions`` at once with a valid ``ChatCompletion`` whose content
has as many 4-character words as the request's ``max_tokens`` / ``max_completion_tokens``
(≈ one token each), plus ``usage``. Its CPU is not counted: only the client process's
``time.process_time()`` (user + system, all threads) is. Prompts are deterministic text of
≈ 4 characters per token. Three parts:

1. size grid (`run_grid`): every stack at every prompt/output size, one call (LangGraph:
   one item) in flight, so httpcore's pool holds one connection; fitted per stack as
   ``cpu_ms ≈ a + b * prompt_kchars + c * output_kchars`` (kchars = 1000 characters of
   message content sent / received per call, ≈ 250 tokens);
2. pool pass (`pool_pass_us`): CPU of one assignment pass of httpcore's connection pool
   with N connections, I of them idle, fitted as ``c0 + c_conn*N + c_idle*I + c_pair*N*I``
   — with the reference programs' unlimited pools this term grows with concurrency;
3. bursts (`run_bursts`): n calls sent at once on a warm pool, as ``abatch``/``gather``
   send a batch, compared with parts 1 + 2 given the passes, N and I recorded on the way.

Results go to ``conf/orchestration/client_overhead.json`` with the machine, host-speed
probes, versions, date and command.

    python -m runtime.client_overhead                  # full run (≈ 4 min on 2 cores)
    python -m runtime.client_overhead --quick --out /tmp/co.json   # smoke test

Needs the ``clients`` extra: ``pip install -e ".[clients]"``. docs/client_overhead.md
discusses the numbers.

Modules (``runtime/client_overhead/``):

- `workloads`: constants, `prompt_text`, `messages` and the records `Tally`, `Sample`, `Point`;
- `mock_server`: the mock server (`serve`, in its own process) and `mock_server()`;
- `drivers`: `Driver`, `HttpxDriver`, `OpenAIDriver`, `LangGraphDriver` and their helpers;
- `measure`: timed runs (`measure`, `pool_stats`) and the parts `run_grid`, `run_pool`,
  `run_bursts`;
- `fits`: `fit_sizes`, `predict_sizes`, `orchestration_keys`, `pool_model_ms`, `r2`;
- `pool`: the httpcore pool micro-benchmark (`pool_pass_us`, `fit_pool`);
- `held`: part 4, LangGraph, AsyncOpenAI and its chains (OpWise) against held answers
  (`measure_held`; its command line, the fitted curve and the simulator's prediction
  beside it: `python -m experiments.client_held`);
- `cli`: `calibrate`, `run_benchmark`, `machine_info`, `render_table`, `parse_args`, `main`
  (``__main__``).

The names below are re-exported here, except the `mock_server` context manager: import
it from `runtime.client_overhead.mock_server` (the name of its module).
"""

from __future__ import annotations

from runtime.client_overhead.cli import (
    DEFAULT_OUT,
    KINDS,
    PACKAGES,
    calibrate,
    machine_info,
    main,
    parse_args,
    render_table,
    run_benchmark,
)
from runtime.client_overhead.drivers import (
    UNLIMITED,
    Driver,
    HttpxDriver,
    LangGraphDriver,
    OpenAIDriver,
    pool_of,
)
from runtime.client_overhead.fits import (
    fit_sizes,
    orchestration_keys,
    pool_model_ms,
    predict_sizes,
)
from runtime.client_overhead.measure import (
    measure,
    pool_stats,
    run_bursts,
    run_grid,
    run_pool,
)
from runtime.client_overhead.mock_server import completion_payload, serve
from runtime.client_overhead.pool import fit_pool, pool_pass_us
from runtime.client_overhead.workloads import (
    CHARS_PER_TOKEN,
    MODEL,
    REPO_ROOT,
    SYSTEM_PROMPT,
    Point,
    Sample,
    Tally,
    prompt_text,
)

__all__ = [
    "CHARS_PER_TOKEN", "DEFAULT_OUT", "KINDS", "MODEL", "PACKAGES", "REPO_ROOT",
    "SYSTEM_PROMPT", "UNLIMITED", "Driver", "HttpxDriver", "LangGraphDriver",
    "OpenAIDriver", "Point", "Sample", "Tally", "calibrate", "completion_payload",
    "fit_pool", "fit_sizes", "machine_info", "main", "measure", "orchestration_keys",
    "parse_args", "pool_model_ms", "pool_of", "pool_pass_us", "pool_stats",
    "predict_sizes", "prompt_text", "render_table", "run_benchmark", "run_bursts",
    "run_grid", "run_pool", "serve",
]
