"""A plugin module, made per test, that keeps every trace the router finishes."""

from __future__ import annotations

import sys
import time
import types

import pytest
from herd import hookimpl

TRACES: list = []


@pytest.fixture
def collector(monkeypatch: pytest.MonkeyPatch) -> str:
    """The module name to put in ``plugins.load``; ``TRACES`` fills as requests finish."""
    module = types.ModuleType("herd_test_trace_collector")

    @hookimpl
    def herd_request_finished(trace):  # type: ignore[no-untyped-def]
        TRACES.append(trace)

    module.herd_request_finished = herd_request_finished  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, module.__name__, module)
    TRACES.clear()
    return module.__name__


def wait_traces(count: int, timeout: float = 20.0) -> list:
    """At least ``count`` traces, waiting up to ``timeout`` seconds for them."""
    deadline = time.monotonic() + timeout
    while len(TRACES) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(TRACES) >= count, f"expected {count} traces, got {len(TRACES)}"
    return list(TRACES)
