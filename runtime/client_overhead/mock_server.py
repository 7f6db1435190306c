"""The mock OpenAI-compatible server, run in a separate process.

Contract: `mock_server()` starts ``python -m runtime.client_overhead --serve PID`` (the
package's `__main__`, which calls `serve`) with the repository root as working directory
and yields its base URL; the server answers ``POST .../chat/completions`` at once with a
valid ``ChatCompletion`` of ``max_tokens`` / ``max_completion_tokens`` 4-character words
(``/hold/<ms>/...``: after <ms> ms; ``/wave/<ms>/...``: at the next multiple of <ms> ms
on the server's clock, so that every call arriving within a period is answered at the
same moment, as an engine finishes a batch of equal-length outputs in one step;
``/batch/<ms>/<k>/...``: calls wait in arrival order and every <ms> ms the first <k> are
answered, as an engine of bounded throughput serves a backlog), and exits when its parent
does. Started with ``record_arrivals``, it also notes each completion request's arrival
(server clock, ``time.monotonic``) with the client's CPU seconds at that moment (the parent
process's user + system time, psutil's `cpu_times`: /proc's 10-ms ticks);
``GET /arrivals`` returns the notes as JSON ``[[t, cpu_s], ...]`` and clears them
(`fetch_arrivals`).

Two servers give those answers: `asyncio` (a bare HTTP/1.1 loop, parts 1-4's) and
`uvicorn` (an ASGI app under uvicorn, the HTTP server vLLM's OpenAI API server runs on, with
its keep-alive timeout of 5 s as vLLM sets it). The client's CPU per call differs between
them (docs/client_overhead.md, "the server"), so a measurement names its server.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import re
import select
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

from runtime.client_overhead.workloads import CHARS_PER_TOKEN, MODEL, REPO_ROOT

_MAX_TOKENS_RE = re.compile(rb'"max(?:_completion)?_tokens"\s*:\s*(\d+)')
_WORD = "tok "  # CHARS_PER_TOKEN characters: one word ≈ one token


def completion_payload(n_tokens: int, prompt_bytes: int) -> bytes:
    """A non-streaming chat.completion with `n_tokens` words of content."""
    content = (_WORD * n_tokens)[:-1]
    prompt_tokens = prompt_bytes // CHARS_PER_TOKEN
    obj = {
        "id": "chatcmpl-mock",
        "object": "chat.completion",
        "created": 1700000000,
        "model": MODEL,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content, "refusal": None},
            "logprobs": None,
            "finish_reason": "length",
        }],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": n_tokens,
                  "total_tokens": prompt_tokens + n_tokens},
    }
    return json.dumps(obj, separators=(",", ":")).encode()


def answer_delay(path: bytes, now: float) -> float:
    """Seconds to wait before answering a request for `path` that arrived at `now`:
    ``/hold/<ms>/`` <ms> ms; ``/wave/<ms>/`` until the next multiple of <ms> ms (the pool
    benchmark's two ways of answering late); 0 otherwise."""
    parts = path.split(b"/")
    if len(parts) < 3 or parts[1] not in (b"hold", b"wave"):
        return 0.0
    ms = int(parts[2])
    if parts[1] == b"hold":
        return ms / 1e3
    period = ms / 1e3
    return period - now % period


class _Batches:
    """``/batch/<ms>/<k>/``: one arrival-order queue per (ms, k), each with a ticker that
    answers its first k waiting calls every ms (started by the first call)."""

    def __init__(self) -> None:
        self.queues: dict[tuple[int, int], collections.deque[asyncio.Future[None]]] = {}
        self.tickers: set[asyncio.Task[None]] = set()

    async def wait(self, ms: int, k: int) -> None:
        key = (ms, k)
        loop = asyncio.get_running_loop()
        if key not in self.queues:
            self.queues[key] = collections.deque()
            self.tickers.add(loop.create_task(self._tick(ms, k, self.queues[key])))
        done: asyncio.Future[None] = loop.create_future()
        self.queues[key].append(done)
        await done

    @staticmethod
    async def _tick(ms: int, k: int, queue: collections.deque[asyncio.Future[None]]) -> None:
        while True:
            await asyncio.sleep(ms / 1e3)
            for _ in range(min(k, len(queue))):
                queue.popleft().set_result(None)


_BATCHES = _Batches()


class _ArrivalLog:
    """The arrival notes of a recording server (module docstring); off unless `watch` ran."""

    def __init__(self) -> None:
        self.client: Any = None  # psutil.Process of the client, once watched
        self.notes: list[tuple[float, float]] = []

    def watch(self, pid: int) -> None:
        import psutil

        self.client = psutil.Process(pid)

    def note(self) -> None:
        if self.client is None:
            return
        now = time.monotonic()
        t = self.client.cpu_times()  # as runtime/server_session.py reads its processes
        self.notes.append((now, t.user + t.system))

    def take(self) -> bytes:
        notes, self.notes = self.notes, []
        return json.dumps(notes).encode()


_ARRIVALS = _ArrivalLog()


async def _answer(method: bytes, path: bytes, body: bytes) -> tuple[int, bytes]:
    """(status, JSON payload) for one request, once its path's delay has passed (both
    servers answer through this)."""
    if method == b"GET" and path == b"/arrivals":
        return 200, _ARRIVALS.take()
    if method == b"POST" and path.endswith(b"/chat/completions"):
        _ARRIVALS.note()
    delay = answer_delay(path, time.monotonic())
    if delay > 0:
        await asyncio.sleep(delay)
    elif path.startswith(b"/batch/"):
        _, _, ms, k = path.split(b"/")[:4]
        await _BATCHES.wait(int(ms), int(k))
    if method == b"POST" and path.endswith(b"/chat/completions"):
        m = _MAX_TOKENS_RE.search(body)
        return 200, completion_payload(int(m.group(1)) if m else 16, len(body))
    return 404, b'{"error":"not found"}'


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            method, path, _ = lines[0].split(b" ", 2)
            length, close = 0, False
            for line in lines[1:]:
                key, _, value = line.partition(b":")
                key = key.strip().lower()
                if key == b"content-length":
                    length = int(value)
                elif key == b"connection" and value.strip().lower() == b"close":
                    close = True
            body = await reader.readexactly(length) if length else b""
            code, payload = await _answer(method, path.split(b"?")[0], body)
            status = b"200 OK" if code == 200 else b"404 Not Found"
            writer.write(b"HTTP/1.1 " + status + b"\r\ncontent-type: application/json\r\n"
                         b"content-length: " + str(len(payload)).encode() + b"\r\n\r\n"
                         + payload)
            await writer.drain()
            if close:
                break
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        pass
    finally:
        writer.close()


SERVERS = ("asyncio", "uvicorn")
UVICORN_KEEP_ALIVE_S = 5  # vLLM's VLLM_HTTP_TIMEOUT_KEEP_ALIVE default (uvicorn's own too)


async def _asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The same answers as `_handle`, as an ASGI app (the `uvicorn` server)."""
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    status, payload = await _answer(scope["method"].encode(), scope["path"].encode(), body)
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(payload)).encode())]})
    await send({"type": "http.response.body", "body": payload})


def serve(parent_pid: int, server: str = "uvicorn", record: str = "") -> None:
    """Server process: serve on a free port of 127.0.0.1, print the port, exit with the
    parent; `record` = "record" notes arrivals with the parent's CPU (module docstring)."""

    async def watch_parent() -> None:
        while os.getppid() == parent_pid:  # orphaned (parent killed): stop
            await asyncio.sleep(0.5)

    async def main_asyncio() -> None:
        srv = await asyncio.start_server(_handle, "127.0.0.1", 0, backlog=4096)
        print(srv.sockets[0].getsockname()[1], flush=True)
        async with srv:
            await watch_parent()

    async def main_uvicorn() -> None:
        import uvicorn

        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        # listening before the port is announced: uvicorn's own listen comes later, and a
        # client connecting in between was refused (seen under load in the test suite)
        sock.listen(4096)
        print(sock.getsockname()[1], flush=True)
        srv = uvicorn.Server(uvicorn.Config(
            _asgi, log_level="warning", timeout_keep_alive=UVICORN_KEEP_ALIVE_S,
            backlog=4096, lifespan="off"))
        serving = asyncio.create_task(srv.serve(sockets=[sock]))
        await watch_parent()
        srv.should_exit = True
        await serving

    if server not in SERVERS:
        raise ValueError(f"mock server {server!r}: choose one of {', '.join(SERVERS)}")
    if record not in ("", "record"):
        raise ValueError(f"mock server: the third argument is 'record' or nothing, got {record!r}")
    if record == "record":
        _ARRIVALS.watch(parent_pid)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main_asyncio() if server == "asyncio" else main_uvicorn())


@contextlib.contextmanager
def mock_server(timeout_s: float = 60.0, server: str = "uvicorn",
                record_arrivals: bool = False) -> Iterator[str]:
    """Run the mock server (`server`: one of `SERVERS`) in a child process; yields its base
    URL (``.../v1``). `record_arrivals`: the server notes every request's arrival with this
    process's CPU (`fetch_arrivals`).

    The child is ``python -m runtime.client_overhead --serve PID [SERVER [record]]`` (a plain
    subprocess, so this works from any caller); it is terminated, then killed if need be,
    on every exit path."""
    if server not in SERVERS:
        raise ValueError(f"mock server {server!r}: choose one of {', '.join(SERVERS)}")
    proc = subprocess.Popen(
        [sys.executable, "-m", "runtime.client_overhead", "--serve", str(os.getpid()), server,
         *(["record"] if record_arrivals else [])],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], timeout_s)
        line = proc.stdout.readline() if ready else ""
        if not line.strip().isdigit():
            raise RuntimeError(f"mock server did not start within {timeout_s} s "
                               f"(exit code {proc.poll()})")
        yield f"http://127.0.0.1:{int(line)}/v1"
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def fetch_arrivals(base_url: str) -> list[tuple[float, float]]:
    """The arrival notes of a recording mock server at `base_url` (``.../v1``), oldest
    first, as (server monotonic s, client CPU s); clears them on the server."""
    root = base_url.rsplit("/v1", 1)[0]
    with urllib.request.urlopen(f"{root}/arrivals", timeout=30) as r:
        return [(float(t), float(c)) for t, c in json.loads(r.read())]
