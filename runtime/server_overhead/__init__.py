"""CPU cost per request of vLLM's OpenAI API server process (the "orchestration cost" of
going through the server rather than calling the engine in-process).

In vLLM V1 the API-server process parses HTTP and JSON, applies the chat template,
tokenizes, keeps request bookkeeping and detokenizes; the engine core (scheduler) and its
worker (the model) run in child processes. This benchmark starts a real server on the
tiny model (`runtime.serve.VllmServer`), sends non-streaming `/v1/chat/completions` at a
fixed concurrency over a grid of prompt lengths (exact token counts after the chat
template) and output lengths, and reads each process's CPU time (psutil, user + system)
before and after each grid point. The API server's CPU per request is fitted as
``a + b * prompt_tokens + c * output_tokens``.

Modules: `prompts` (prompts of exact token lengths, unique per request), `measure` (one
grid point: requests, CPU snapshots of the server's processes and threads), `fit` (least
squares and residuals, numpy only), `cli` (``python -m runtime.server_overhead --out
PATH``: the run, its provenance, the atomic JSON write). Results:
``conf/orchestration/server_overhead.json``; write-up: docs/server_overhead.md.
"""
