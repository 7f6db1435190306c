"""`runtime.serve.VllmServer`: a real vLLM OpenAI API server on the tiny model.

One server per module (a start takes 30-90 s here). Greedy outputs are checked against
`tiny_model.next_token` (the function the in-process engine is checked against in
test_exact_outputs.py) on the chat prompt tokenized as the model's template gives it.
The last test stops the module's server and checks nothing of it is left.
"""

from __future__ import annotations

import json
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from runtime.errors import ServerStartError
from runtime.serve import VllmServer, alive, server_args
from runtime.tiny_model import next_token, tiny_model_dir

pytestmark = pytest.mark.vllm


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VllmServer]:
    with VllmServer(tiny_model_dir(), tmp_path_factory.mktemp("serve"),
                    startup_timeout_s=400) as srv:
        yield srv


def _messages() -> list[dict[str, str]]:
    words = " ".join(f"w{(37 * i) % 5003} s{i}" for i in range(120))
    return [{"role": "system", "content": "you are an expert"},
            {"role": "user", "content": f"please review {words}"}]


def test_server_args_cover_every_engine_argument() -> None:
    flags = server_args({"model": "/m", "block_size": 32, "enable_prefix_caching": False,
                         "enforce_eager": True, "disable_log_stats": False})
    assert flags == ["--model", "/m", "--block-size", "32", "--no-enable-prefix-caching",
                     "--enforce-eager"]
    with pytest.raises(ValueError, match="new_knob"):
        server_args({"new_knob": 1})


def test_chat_completion_is_the_constructed_function(server: VllmServer) -> None:
    from transformers import AutoTokenizer

    n = 12
    body = {"model": server.model_name, "messages": _messages(), "temperature": 0,
            "max_tokens": n, "ignore_eos": True, "return_token_ids": True}
    r = httpx.post(f"{server.base_url}/chat/completions", json=body, timeout=120)
    assert r.status_code == 200, r.text
    out = r.json()
    choice = out["choices"][0]
    text = choice["message"]["content"]
    assert text
    tok = AutoTokenizer.from_pretrained(str(server.model_dir))
    prompt = tok.apply_chat_template(_messages(), add_generation_prompt=True, tokenize=True)
    if not isinstance(prompt, list):  # newer transformers return a BatchEncoding
        prompt = list(prompt["input_ids"])
    assert len(prompt) > 160  # where next_token is guaranteed
    assert out["prompt_token_ids"] == prompt
    expected: list[int] = []
    for _ in range(n):
        expected.append(next_token(prompt + expected))
    assert choice["token_ids"] == expected
    assert out["usage"]["prompt_tokens"] == len(prompt)
    assert out["usage"]["completion_tokens"] == n
    assert text == tok.decode(expected, skip_special_tokens=True)


def test_every_socket_is_on_loopback(server: VllmServer) -> None:
    procs = server.processes()
    assert len(procs) >= 2, "expected the API server and its engine-core process"
    listening = []
    for p in procs:
        for c in p.net_connections(kind="inet"):
            if c.status == psutil.CONN_LISTEN or (c.type == socket.SOCK_DGRAM and c.laddr):
                listening.append((p.pid, p.name(), c.laddr.ip, c.laddr.port))
    assert (server.pid, procs[0].name(), "127.0.0.1", server.port) in listening
    assert [s for s in listening if s[2] != "127.0.0.1"] == []


def test_stop_leaves_no_process_and_frees_the_port(server: VllmServer) -> None:
    procs = server.processes()
    assert procs and server.running
    port = server.port
    server.stop()
    server.stop()  # idempotent
    assert not server.running
    deadline = time.monotonic() + 10  # the reaper of orphaned children may lag a little
    while alive(procs) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert alive(procs) == []
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port),
                                                                         timeout=2):
        pass


def test_broken_model_fails_fast_with_the_log_tail(tmp_path: Path) -> None:
    model = tmp_path / "broken"
    shutil.copytree(tiny_model_dir(), model)
    cfg = json.loads((model / "config.json").read_text())
    cfg["architectures"] = ["HeliumNoSuchArchitecture"]
    (model / "config.json").write_text(json.dumps(cfg))
    srv = VllmServer(model, tmp_path / "log", startup_timeout_s=300)
    t0 = time.monotonic()
    with pytest.raises(ServerStartError) as err:
        srv.start()
    msg = str(err.value)
    assert "exited with code" in msg and str(srv.log_path) in msg
    assert "HeliumNoSuchArchitecture" in msg  # vLLM's own complaint, from the log tail
    assert not srv.running
    print(f"broken model: ServerStartError after {time.monotonic() - t0:.1f} s")


def test_a_server_left_running_is_stopped_at_interpreter_exit(tmp_path: Path) -> None:
    """A process that starts a server and exits without stopping it: the server's own
    `atexit` registration stops its whole process tree."""
    import os
    import subprocess
    import sys

    code = ("from runtime.serve import VllmServer\n"
            "from runtime.tiny_model import tiny_model_dir\n"
            f"srv = VllmServer(tiny_model_dir(), {str(tmp_path)!r}, startup_timeout_s=400)\n"
            "srv.start()\n"
            "print('TREE', *[p.pid for p in srv.processes()], flush=True)\n")
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [root, *filter(None, [os.environ.get("PYTHONPATH")])])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=600, env=env, cwd=root)
    assert out.returncode == 0, out.stderr[-2000:]
    pids = [int(x) for x in out.stdout.split("TREE", 1)[1].split()]
    assert len(pids) >= 2  # the API server and its engine core
    left = [p for p in pids if psutil.pid_exists(p)
            and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    assert not left, left
