"""Pytest fixtures for herd: emulated Ollama nodes and a router in front of them.

Installed as a pytest plugin (entry point ``pytest11``), so a plugin author's tests
get them with no import:

Example:
    >>> def test_my_signal(make_sim, make_router):
    ...     a, b = make_sim(name="a"), make_sim(name="b")
    ...     router = make_router(nodes=[a, b])
    ...     httpx.post(router.url + "/api/chat", json={...})
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

__all__ = ["make_router", "make_sim", "node_entry"]


def node_entry(node: Any) -> dict[str, Any]:
    """A ``nodes:`` entry for a running SimNode (or a dict passed through)."""
    if isinstance(node, dict):
        return node
    return {"name": node.name, "url": node.url}


@pytest.fixture
def make_sim() -> Iterator[Callable[..., Any]]:
    """Start emulated Ollama nodes on free 127.0.0.1 ports; all stop after the test."""
    from herd.testing import SimConfig, SimNode

    started: list[Any] = []

    def factory(name: str | None = None, **config: Any) -> Any:
        name = name or f"sim{len(started) + 1}"
        node = SimNode(SimConfig(name=name, port=0, **config))
        node.start()
        started.append(node)
        return node

    yield factory
    for node in started:
        node.stop()


@pytest.fixture
def make_router(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Any]]:
    """Start routers on free 127.0.0.1 ports in front of the given nodes; all stop after."""
    from herd.testing.router_runner import RouterHandle

    started: list[RouterHandle] = []

    def factory(nodes: list[Any] = (), **settings: Any) -> RouterHandle:
        settings.setdefault("data_dir", str(tmp_path_factory.mktemp("herd-data")))
        settings.setdefault("fleet", {}).setdefault("discover_local", False)
        router = RouterHandle(nodes=[node_entry(n) for n in nodes], **settings)
        router.start()
        started.append(router)
        return router

    yield factory
    for router in started:
        router.stop()
