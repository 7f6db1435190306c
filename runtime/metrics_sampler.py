"""vLLM API servers' `/metrics` gauges, sampled from a thread of their own.

The client programs run every call in one asyncio event loop, and that loop is busy for
seconds at a time when requests pile up in httpcore's pool (docs/client_overhead.md, "the
pile-up"). A sampler that is a task of the same loop is starved exactly then: on a real
LangGraph MapRed-MMLU run (22.7 s, 0.25 s interval) it took 18 samples, and its mean
running batch was 132.6 requests where a thread polling every ~65 ms saw 159.2 over the
same run (an OpWise run under other load: 112.2 against 82.3; the bias has no fixed sign).
So the sampler polls from a thread with a blocking HTTP client, stamps each
sample on the session's clock when its answer arrived, and weighs it by the time to the
same server's next poll (the last one by the interval), so that a late poll does not
count as a short one.

Contract: `MetricsSampler(metrics_urls, clock, interval_s, parse)`; `start()` then `stop()`
(once each; `stop` joins the thread). `samples[w]`: the polls of server `w` that found
requests running or waiting, as `EngineSample`s (`batched_tokens` is not exported: 0).
`polled[w]`: the polls server `w` answered so far (the session records them per run as
`metrics_polls`). `cpu_s`: the thread's own CPU time, which the session takes off the
client process's. A poll that fails (the server busy past
`POLL_TIMEOUT_S`, or gone) is skipped; a dead server is the run's error to report, not the
sampler's.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Sequence

import httpx

from helium_lab.backend import EngineSample

# a poll unanswered this long is skipped; it also bounds how long `stop` waits (the API
# servers were seen to leave `/metrics` unanswered for ~2 s while their engine stepped)
POLL_TIMEOUT_S = 5.0


class MetricsSampler:
    """Polls each server's `/metrics` every `interval_s` from a thread (module docstring)."""

    def __init__(self, metrics_urls: Sequence[str], clock: Callable[[], float],
                 interval_s: float, parse: Callable[[str], dict[str, float]]) -> None:
        if interval_s <= 0:
            raise ValueError(f"MetricsSampler: interval_s must be > 0, got {interval_s}")
        self.urls = list(metrics_urls)
        self.clock, self.interval_s, self.parse = clock, interval_s, parse
        self.samples: dict[int, list[EngineSample]] = {w: [] for w in range(len(self.urls))}
        self.cpu_s = 0.0
        self.polled = [0] * len(self.urls)  # polls answered so far, per server
        self._polls: dict[int, list[tuple[float, dict[str, float] | None]]] = {
            w: [] for w in range(len(self.urls))}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="metrics-sampler",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """End the polling, wait for the thread, and build `samples`."""
        self._stop.set()
        self._thread.join()
        for w, polls in self._polls.items():
            self.samples[w] = list(weighted(polls, self.interval_s))

    def _loop(self) -> None:
        begin = time.thread_time()
        try:
            with httpx.Client(timeout=POLL_TIMEOUT_S) as client:
                while not self._stop.is_set():
                    for w, url in enumerate(self.urls):
                        m: dict[str, float] | None = None
                        with contextlib.suppress(httpx.HTTPError):
                            m = self.parse(client.get(url).text)
                        self._polls[w].append((self.clock(), m))
                        self.polled[w] += m is not None
                    self._stop.wait(self.interval_s)
        finally:
            self.cpu_s = time.thread_time() - begin


def weighted(polls: Sequence[tuple[float, dict[str, float] | None]], interval_s: float
             ) -> list[EngineSample]:
    """Busy polls (requests running or waiting) as samples lasting until the next poll
    (failed polls count as polls; the last lasts `interval_s`)."""
    out = []
    for i, (t, m) in enumerate(polls):
        if m is None or m.get("running", 0) + m.get("waiting", 0) <= 0:
            continue
        dt = polls[i + 1][0] - t if i + 1 < len(polls) else interval_s
        out.append(EngineSample(t, dt, int(m.get("running", 0)), int(m.get("waiting", 0)),
                                0, m.get("kv_usage", 0.0)))
    return out
