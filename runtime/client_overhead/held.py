"""Part 4: the clients at the paper's concurrency, against a mock server that holds
every response (the measurement; `experiments/client_held.py` puts the simulator's client
model beside it and is the command line).

Parts 1-3 measure a client whose server answers at once, so its connection pool never holds
more than a few dozen connections. On a GPU the answers take seconds, the reference
programs' unlimited pools open a connection per call in flight (HD
`bench_programs/utils/common.py`: `max_connections=9999999`), and httpcore's pool pass,
which walks every connection once per idle connection, grows with their product (part 2).
This part measures that regime directly and checks the model against it:

- workload: LangGraph MapRed as HD `map_reduce/langgraph.py` runs it (`kind`
  "langgraph_mapred": `width` experts then a summarizer per item, `abatch` over all items
  at once), every call at once through AsyncOpenAI (`kind` "openai", as HD's querywise
  programs gather a batch), or AsyncOpenAI chains (`kind` "openai_chain": each item's
  `width` + 1 calls in turn, items at once, as OpWise's stages run them),
  `prompt_tokens` of context per expert, `output_tokens` per answer; the mock server
  answers each call `hold_ms` after it arrives (``/hold/<ms>/``);
- measured (`measure_held`): the client's CPU per call and wall time, and at every pool
  pass the pool's connections N, idle connections I and requests Q (queued for a
  connection or on one: the calls in flight as the pool sees them);
- predicted: `experiments.client_held.predict_held` (the simulator may not be imported
  by the runtime).

    python -m experiments.client_held                  # ≈ 15 min on 2 cores

Results go to ``conf/orchestration/client_held.json``; docs/client_overhead.md part 4.
"""

from __future__ import annotations

import gc
import time
from typing import Any

from runtime.client_overhead.measure import make_driver, recorded_passes
from runtime.client_overhead.workloads import Tally


async def measure_held(base_url: str, calls: int, hold_ms: int, prompt_tokens: int,
                       output_tokens: int, width: int,
                       kind: str = "langgraph_mapred", release: str = "hold") -> dict[str, Any]:
    """One timed batch of `calls` on a warm pool (LangGraph: calls // (width + 1) MapRed
    items in one `abatch`). `release`: "hold" answers each call `hold_ms` after it
    arrives, "wave" answers every call of a `hold_ms` period together at its end."""
    if release not in ("hold", "wave"):
        raise ValueError(f"release must be 'hold' or 'wave', got {release!r}")
    driver = make_driver(kind, base_url.replace("/v1", f"/{release}/{hold_ms}/v1"), width)
    try:
        await driver.run(2 * (width + 1), prompt_tokens, output_tokens, None, Tally())  # warm
        tally = Tally()
        gc.collect()
        with recorded_passes(driver) as seen:
            c0, w0 = time.process_time(), time.perf_counter()
            await driver.run(calls, prompt_tokens, output_tokens, None, tally)
            cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    finally:
        await driver.aclose()
    n = [s[0] for s in seen] or [0]
    idle = [s[1] for s in seen] or [0]
    queued = [s[2] for s in seen] or [0]
    return {"kind": kind, "release": release, "calls": tally.calls, "hold_ms": hold_ms,
            "cpu_s": round(cpu, 3),
            "wall_s": round(wall, 3), "cpu_ms_per_call": round(1e3 * cpu / tally.calls, 3),
            "pool_passes_per_call": round(len(seen) / tally.calls, 3),
            "pool_mean_connections": round(sum(n) / len(n), 1),
            "pool_max_connections": max(n),
            "pool_mean_idle": round(sum(idle) / len(idle), 1), "pool_max_idle": max(idle),
            "pool_mean_requests": round(sum(queued) / len(queued), 1),
            "pool_max_requests": max(queued)}
