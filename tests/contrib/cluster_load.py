"""Helpers for the cluster tests and benchmark: streams spread over replicas, and a
router started as its own process (so it can be killed with SIGKILL)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

__all__ = ["RouterProcess", "StreamResult", "chat_stream", "streams_over"]

MODEL = "llama3.2:3b"


@dataclass
class StreamResult:
    """One streamed chat: its status, whether it reached ``done``, and what broke it."""

    status: int = 0
    done: bool = False
    chunks: int = 0
    error: str = ""
    started: asyncio.Event = field(default_factory=asyncio.Event)


async def chat_stream(
    client: httpx.AsyncClient,
    url: str,
    result: StreamResult,
    model: str = MODEL,
    tokens: int | None = None,
) -> StreamResult:
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
    }
    if tokens is not None:
        body["options"] = {"num_predict": tokens}
    try:
        async with client.stream("POST", url + "/api/chat", json=body) as reply:
            result.status = reply.status_code
            async for line in reply.aiter_lines():
                if line.strip():
                    result.chunks += 1
                    result.started.set()
                    if '"done":true' in line.replace(" ", ""):
                        result.done = True
    except httpx.HTTPError as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    return result


async def streams_over(urls: list[str], count: int, timeout: float = 60.0) -> list[StreamResult]:
    """``count`` concurrent streams, spread round-robin over ``urls``."""
    limits = httpx.Limits(max_connections=count + 8)
    async with httpx.AsyncClient(timeout=timeout, limits=limits) as client:
        jobs = [chat_stream(client, urls[i % len(urls)], StreamResult()) for i in range(count)]
        return await asyncio.gather(*jobs)


class RouterProcess:
    """``herd`` in its own process with a YAML file, on a free 127.0.0.1 port."""

    def __init__(self, config: dict[str, Any], directory: Path, port: int) -> None:
        self.port = port
        self.path = directory / "herd.yaml"
        config = {**config, "host": "127.0.0.1", "port": port, "data_dir": str(directory)}
        self.path.write_text(yaml.safe_dump(config))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> RouterProcess:
        return self.launch().ready()

    def launch(self) -> RouterProcess:
        """Start the process and return at once (see :meth:`ready`)."""
        herd = Path(sys.executable).with_name("herd")
        env = {k: v for k, v in os.environ.items() if not k.startswith("HERD_")}
        self.process = subprocess.Popen(
            [str(herd), "--config", str(self.path)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return self

    def ready(self) -> RouterProcess:
        """Wait until it answers ``/healthz``."""
        assert self.process is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"herd exited with {self.process.returncode}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("herd did not answer /healthz")

    def kill(self) -> None:
        """SIGKILL: no shutdown, no releases; its leases must expire on their own."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
