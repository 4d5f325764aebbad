"""The router as a real process (``python -m herd._engine.cli``): SIGTERM with streams in
flight, kill -9 and a restart on the same data, and the traces a crash may lose (at most
the DuckDB sink's ``flush_interval`` worth; docs/reliability.md)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb
import httpx
import ollama
import openai
import pytest
import yaml

LLAMA = "llama3.2:3b"
CHAT = {
    "model": LLAMA,
    "messages": [{"role": "user", "content": "hi"}],
    "stream": False,
    "options": {"num_predict": 4},
}
# uvicorn shuts down gracefully on SIGTERM, then re-raises it: -15 is a clean exit too
CLEAN_EXITS = (0, -signal.SIGTERM)
FLUSH_INTERVAL = 0.2


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RouterProcess:
    def __init__(self, tmp: Path, nodes: list, port: int, limits: dict | None = None) -> None:
        self.data = tmp / "data"
        self.port = port
        self.config = tmp / "herd.yaml"
        self.config.write_text(
            yaml.safe_dump(
                {
                    "host": "127.0.0.1",
                    "port": port,
                    "data_dir": str(self.data),
                    "nodes": [
                        {"name": n.config.name, "url": n.url, "num_parallel": 8} for n in nodes
                    ],
                    "fleet": {"discover_local": False},
                    "plugins": {"options": {"duckdb": {"flush_interval": FLUSH_INTERVAL}}},
                    "limits": limits or {},
                }
            )
        )
        self.proc: subprocess.Popen | None = None
        self.log = tmp / "router.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> RouterProcess:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env = {k: v for k, v in env.items() if not k.startswith("HERD_")}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "herd._engine.cli", "--config", str(self.config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()[-2000:]
            try:
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError("router did not start: " + self.log.read_text()[-2000:])

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=60)

    def traces(self) -> int:
        with duckdb.connect(str(self.data / "herd.duckdb"), read_only=True) as db:
            return db.execute("SELECT count(*) FROM traces").fetchone()[0]

    def endings(self) -> list[tuple[str, str, int, str]]:
        """(api, status, http_status, error) of every trace."""
        with duckdb.connect(str(self.data / "herd.duckdb"), read_only=True) as db:
            query = "SELECT api, status, http_status, error FROM traces ORDER BY api, http_status"
            return db.execute(query).fetchall()


@pytest.fixture
def router_process(tmp_path, make_sim):
    sim = make_sim(name="a", gen_tps=40, num_parallel=8)
    router = RouterProcess(tmp_path, [sim], _free_port()).start()
    yield router
    if router.proc is not None and router.proc.poll() is None:
        router.proc.kill()
        router.proc.wait(timeout=30)


def _stream(url: str) -> list[dict]:
    body = dict(CHAT, stream=True, options={"num_predict": 40})
    with httpx.stream("POST", url + "/api/chat", json=body, timeout=60) as reply:
        assert reply.status_code == 200
        return [json.loads(line) for line in reply.iter_lines() if line]


def test_sigterm_finishes_the_streams_in_flight_and_flushes_their_traces(router_process):
    with ThreadPoolExecutor(8) as pool:
        streams = [pool.submit(_stream, router_process.url) for _ in range(8)]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # all 8 have their first byte
            queue = httpx.get(router_process.url + "/fleet/status").json()["summary"]
            if queue["in_flight"] >= 8:
                break
            time.sleep(0.05)
        assert router_process.stop(signal.SIGTERM) in CLEAN_EXITS
        results = [s.result(timeout=60) for s in streams]
    assert all(lines[-1].get("done") is True for lines in results)
    assert router_process.traces() == 8


def test_kill_9_loses_no_trace_older_than_the_flush_interval(router_process):
    sent = 30
    for _ in range(sent):
        assert httpx.post(router_process.url + "/api/chat", json=CHAT, timeout=30).status_code
    time.sleep(FLUSH_INTERVAL + 2.0)  # every trace is older than the bound now
    router_process.stop(signal.SIGKILL)
    assert router_process.traces() == sent


def test_after_kill_9_the_router_restarts_on_the_same_data(router_process):
    for _ in range(5):
        httpx.post(router_process.url + "/api/chat", json=CHAT, timeout=30)
    router_process.stop(signal.SIGKILL)
    router_process.start()
    reply = httpx.post(router_process.url + "/api/chat", json=CHAT, timeout=30)
    assert reply.status_code == 200 and reply.json()["done"] is True
    assert router_process.stop(signal.SIGTERM) in CLEAN_EXITS
    assert router_process.traces() >= 1


def test_past_the_grace_period_every_request_ends_with_an_error_its_client_reads(
    tmp_path, make_sim
):
    # a long prompt keeps one request waiting for its first byte; two streams run slowly
    sim = make_sim(name="a", gen_tps=5, prompt_tps=20, reply_tokens=300, num_parallel=8)
    grace = {"shutdown_grace_s": 1.0}
    router = RouterProcess(tmp_path, [sim], _free_port(), limits=grace).start()
    long_prompt = {**CHAT, "messages": [{"role": "user", "content": "word " * 300}]}

    def ollama_stream() -> str:
        lines = ollama.Client(host=router.url, timeout=60).chat(
            LLAMA, CHAT["messages"], stream=True
        )
        try:
            for _ in lines:
                pass
        except ollama.ResponseError as error:
            return error.error
        return "ended as if whole"

    def openai_stream() -> str:
        client = openai.OpenAI(base_url=router.url + "/v1", api_key="-", max_retries=0)
        chunks = client.chat.completions.create(model=LLAMA, messages=CHAT["messages"], stream=True)
        try:
            for _ in chunks:
                pass
        except openai.APIError as error:
            return error.message
        return "ended as if whole"

    try:
        with ThreadPoolExecutor(3) as pool:
            waiting = pool.submit(
                httpx.post, router.url + "/api/chat", json=long_prompt, timeout=60
            )
            streams = [pool.submit(ollama_stream), pool.submit(openai_stream)]
            deadline = time.monotonic() + 30
            while sim.stats()["active"] < 3 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert router.stop(signal.SIGTERM) in CLEAN_EXITS
            refused = waiting.result(timeout=60)
            cut = [stream.result(timeout=60) for stream in streams]
    finally:
        if router.proc is not None and router.proc.poll() is None:
            router.proc.kill()
    assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
    assert "shutting down" in refused.json()["error"]
    assert cut == ["the router stopped before the answer ended"] * 2
    log = router.log.read_text()
    assert "Traceback" not in log and "ERROR" not in log, log[-3000:]
    assert "3 request(s) still running after limits.shutdown_grace_s (1 s) end now" in log
    assert router.endings() == [
        ("ollama", "failed", 200, "the router stopped before the answer ended"),
        ("ollama", "failed", 503, "the router is shutting down; try again"),
        ("openai", "failed", 200, "the router stopped before the answer ended"),
    ]
