"""Helpers for the end-to-end scheduling tests: chats, long streams, counters, waits."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx

MODEL = "llama3.2:3b"


def wait_for(condition: Callable[[], object], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def turns(*texts: str) -> list[dict[str, str]]:
    """A conversation: user, assistant, user, ... ending with the user's latest message."""
    roles = ("user", "assistant")
    return [{"role": roles[i % 2], "content": text} for i, text in enumerate(texts)]


def chat(
    router: Any,
    model: str = MODEL,
    messages: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> httpx.Response:
    body = {
        "model": model,
        "messages": messages or [{"role": "user", "content": "hi"}],
        "stream": False,
        "options": {"num_predict": 2},
    }
    body.update(extra)
    return httpx.post(router.url + "/api/chat", json=body, headers=headers, timeout=60)


@contextlib.contextmanager
def long_stream(
    router: Any, model: str = MODEL, messages: list[dict[str, Any]] | None = None
) -> Iterator[httpx.Response]:
    """A streamed chat held open after its first line (the node stays busy with it)."""
    body = {"model": model, "messages": messages or [{"role": "user", "content": "long"}]}
    with (
        httpx.Client(timeout=60) as client,
        client.stream("POST", router.url + "/api/chat", json=body) as reply,
    ):
        assert reply.status_code == 200, reply.read()
        lines = reply.iter_lines()  # kept referenced: a collected iterator closes the stream
        next(lines)
        yield reply


def load(sim: Any, model: str = MODEL, **options: Any) -> None:
    """Load a model on an emulated node directly (as another client of that node would)."""
    body: dict[str, Any] = {"model": model, "prompt": ""}
    if options:
        body["options"] = options
    httpx.post(sim.url + "/api/generate", json=body, timeout=30).raise_for_status()


def stats(sim: Any) -> dict[str, Any]:
    return httpx.get(sim.url + "/_sim/stats").json()


def queue_row(router: Any, node: str, model: str = MODEL) -> dict[str, Any]:
    return httpx.get(router.url + "/fleet/queue").json()["nodes"].get(node, {}).get(model, {})
