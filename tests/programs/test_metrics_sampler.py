"""The `/metrics` sampler of the API-server session: off the client's event loop, samples
weighted by the time to the next poll."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from runtime.metrics_sampler import MetricsSampler, weighted
from runtime.server_session import parse_metrics


def test_weighted_keeps_busy_polls_until_the_next_poll() -> None:
    """Idle and failed polls are dropped but still end the sample before them; the last
    sample lasts the interval."""
    polls = [(0.0, {"running": 0.0, "waiting": 0.0}),
             (0.3, {"running": 4.0, "waiting": 1.0, "kv_usage": 0.5}),
             (1.3, None),                                   # a poll that failed
             (1.5, {"running": 0.0, "waiting": 2.0}),
             (1.6, {"running": 7.0, "waiting": 0.0})]
    got = [(s.t, round(s.dt, 9), s.running, s.waiting, s.kv_usage)
           for s in weighted(polls, 0.25)]
    assert got == [(0.3, 1.0, 4, 1, 0.5), (1.5, 0.1, 0, 2, 0.0), (1.6, 0.25, 7, 0, 0.0)]


# a /metrics endpoint in a process of its own (as vLLM's API server is: in this process its
# threads would compete for the GIL with the busy loop below)
_GAUGES = """
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = (b'# HELP vllm:num_requests_running x\\n'
                b'vllm:num_requests_running{engine="0"} 3.0\\n'
                b'vllm:num_requests_waiting{engine="0"} 1.0\\n')
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


@pytest.fixture
def metrics_url() -> Iterator[str]:
    proc = subprocess.Popen([sys.executable, "-c", _GAUGES], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        yield f"http://127.0.0.1:{int(proc.stdout.readline())}/metrics"
    finally:
        proc.kill()
        proc.wait()


def test_samples_keep_coming_while_the_event_loop_is_busy(metrics_url: str) -> None:
    """A coroutine that holds the event loop for 0.6 s (as a pile-up in the client's pool
    does) does not stop the polls: a task of that loop would get none in that time."""
    origin = time.monotonic()

    def clock() -> float:
        return time.monotonic() - origin

    sampler = MetricsSampler([metrics_url], clock, 0.02, parse_metrics)

    async def busy() -> tuple[float, float]:
        await asyncio.sleep(0)
        t0 = clock()
        while clock() - t0 < 0.6:  # never yields
            sum(range(1000))
        return t0, clock()

    sampler.start()
    try:
        while not sampler.polled[0]:  # its HTTP client built, the server answering
            time.sleep(0.01)
        t0, t1 = asyncio.run(busy())
    finally:
        sampler.stop()
    during = [s for s in sampler.samples[0] if t0 <= s.t <= t1]
    assert len(during) >= 3
    assert all((s.running, s.waiting) == (3, 1) for s in sampler.samples[0])
    assert all(s.dt > 0 for s in sampler.samples[0])
    assert sampler.cpu_s > 0.0  # its HTTP client and ~30 polls took CPU, measured


def test_a_server_that_does_not_answer_gives_no_samples() -> None:
    origin = time.monotonic()
    sampler = MetricsSampler(["http://127.0.0.1:9/metrics"], lambda: time.monotonic() - origin,
                             0.01, parse_metrics)
    sampler.start()
    time.sleep(0.1)
    sampler.stop()
    assert sampler.samples == {0: []}


def test_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="interval_s"):
        MetricsSampler([], time.monotonic, 0.0, parse_metrics)
