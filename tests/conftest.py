"""Shared test helpers. The fixtures make_sim and make_router come from herd.testing."""

from __future__ import annotations

from typing import Any

from hypothesis import settings

# herd's fixtures are opt-in: a project that installs herd gets none unless it asks.
pytest_plugins = ["herd.testing.fixtures"]

# Property tests draw the same examples on every run, so a test passes or fails the same
# way each time (a random draw found a real bug once, in one CI run of many). To look for
# new failures, draw afresh: `pytest --hypothesis-profile=explore` (and add what it finds
# as an @example).
settings.register_profile("repeatable", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile("repeatable")

GIB = 1024**3


def emulated(
    name: str, size_gb: float = 2.0, caps: tuple[str, ...] = ("completion", "tools")
) -> Any:
    """An EmulatedModel with a name, a size and capabilities."""
    from herd.testing import EmulatedModel

    return EmulatedModel(name=name, size=int(size_gb * GIB), capabilities=list(caps))
