"""Shared test helpers. The fixtures make_sim and make_router come from herd.testing."""

from __future__ import annotations

from typing import Any

# herd's fixtures are opt-in: a project that installs herd gets none unless it asks.
pytest_plugins = ["herd.testing.fixtures"]

GIB = 1024**3


def emulated(
    name: str, size_gb: float = 2.0, caps: tuple[str, ...] = ("completion", "tools")
) -> Any:
    """An EmulatedModel with a name, a size and capabilities."""
    from herd.testing import EmulatedModel

    return EmulatedModel(name=name, size=int(size_gb * GIB), capabilities=list(caps))
