"""The audit helper: one line per act, who asked, no secrets, repeated refusals counted."""

from __future__ import annotations

import logging

import pytest
from herd._engine import audit as audit_module
from herd._engine.audit import audit


@pytest.fixture(autouse=True)
def fresh_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(audit_module, "_last_seen", {})


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "herd.audit"]


def test_a_line_names_the_act_and_who_asked(caplog: pytest.LogCaptureFixture) -> None:
    scope = {"client": ("10.0.0.9", 5555), "herd_api_key": "ops"}
    with caplog.at_level(logging.INFO, logger="herd.audit"):
        audit("pull", scope, model="llama3.2:3b", node="studio", empty="")
        audit("settings", changes="auto_pull=True, routing.max_retries=3")
    assert lines(caplog) == [
        "pull model=llama3.2:3b node=studio client=10.0.0.9 key_name=ops",
        "settings changes='auto_pull=True, routing.max_retries=3'",
    ]
    assert caplog.records[0].audit == {
        "model": "llama3.2:3b",
        "node": "studio",
        "client": "10.0.0.9",
        "key_name": "ops",
    }


def test_repeated_refusals_are_counted_not_repeated(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [1000.0]
    monkeypatch.setattr(audit_module.time, "monotonic", lambda: clock[0])
    scope = {"client": ("10.0.0.7", 1)}
    with caplog.at_level(logging.INFO, logger="herd.audit"):
        for _ in range(50):
            audit("refused agent", scope, level=logging.WARNING, reason="wrong token")
        audit("refused agent", {"client": ("10.0.0.8", 1)}, level=logging.WARNING, reason="x")
        clock[0] += audit_module.REPEAT_WINDOW_S + 1
        audit("refused agent", scope, level=logging.WARNING, reason="wrong token")
        for _ in range(3):
            audit("drain", node="a")  # acts are never folded
    assert lines(caplog) == [
        "refused agent reason='wrong token' client=10.0.0.7",
        "refused agent reason=x client=10.0.0.8",
        "refused agent reason='wrong token' client=10.0.0.7 repeated=49",
        "drain node=a",
        "drain node=a",
        "drain node=a",
    ]
