"""With no nodes configured, herd looks for the Ollama on this machine and says what it found."""

from __future__ import annotations

import asyncio
import logging
import socket

import aiohttp
import pytest
from herd._engine.config import load_settings
from herd._engine.fleet import registry
from herd._engine.fleet.registry import Fleet
from herd.interfaces import BackendContext
from herd_plugins.backend_ollama import OllamaBackend


def _start_and_stop(monkeypatch: pytest.MonkeyPatch, url: str) -> list[str]:
    """Start a fleet with no nodes, looking for Ollama at ``url``; its views' states."""
    monkeypatch.setattr(registry, "LOCAL_OLLAMA_URL", url)  # never the real 11434 in tests
    settings = load_settings(None, env={})

    async def run() -> list[str]:
        async with aiohttp.ClientSession() as http:
            fleet = Fleet(settings, {"ollama": OllamaBackend}, BackendContext(http=http))
            await fleet.start()
            states = [view.status for view in fleet.views()]
            await fleet.stop()
            return states

    return asyncio.run(run())


def test_no_ollama_here_is_one_warning_saying_what_to_do(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with caplog.at_level(logging.INFO, logger="herd.fleet"):
        states = _start_and_stop(monkeypatch, f"http://127.0.0.1:{port}")
    assert states == ["offline"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    # not "node local is offline: ..." first, then the same news again with the advice
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith("no nodes configured and no Ollama answers at")


def test_an_ollama_here_becomes_node_local(
    make_sim, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    sim = make_sim(name="here")
    with caplog.at_level(logging.INFO, logger="herd.fleet"):
        states = _start_and_stop(monkeypatch, sim.url)
    assert states == ["online"]
    messages = [r.getMessage() for r in caplog.records]
    assert f"found Ollama at {sim.url}; serving it as node 'local'" in messages
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_fleet_status_says_the_local_node_was_discovered(make_sim, make_router, monkeypatch):
    """Not ``yaml``: nobody configured it, and an operator reading the status should know."""
    import httpx

    sim = make_sim(name="here")
    monkeypatch.setattr(registry, "LOCAL_OLLAMA_URL", sim.url)  # never the real 11434
    router = make_router(fleet={"discover_local": True})
    (entry,) = httpx.get(router.url + "/fleet/status").json()["nodes"]
    assert entry["name"] == "local" and entry["source"] == "discovered"
