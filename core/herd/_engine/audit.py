"""The audit trail: one ``herd.audit`` log line per thing an operator (or an agent) did.

Pulls, deletes, copies, drains, settings changes, refused agents, refused API keys and
benchmark runs each call :func:`audit` where they happen. A line names the action, what it
acted on and who asked (client address and API key *name*); a secret is never logged.
Plugins, which may not import the engine, log to the same logger by name:
``logging.getLogger("herd.audit").info(...)``.

Example:
    >>> audit("pull", request, model="llama3.2:3b", node="studio")  # doctest: +SKIP
    # INFO herd.audit: pull model=llama3.2:3b node=studio client=10.0.0.9
"""

from __future__ import annotations

import logging
import time
from typing import Any

__all__ = ["audit"]

audit_log = logging.getLogger("herd.audit")


#: Refusals repeat (an agent with a wrong token beats every few seconds): the same line is
#: written at most once per this many seconds, then with how many were left out.
REPEAT_WINDOW_S = 60.0
_MAX_REMEMBERED = 1024
_last_seen: dict[tuple[Any, ...], list[float]] = {}


def audit(action: str, request: Any = None, *, level: int = logging.INFO, **fields: Any) -> None:
    """Log one audit line: ``action key=value ...``, plus the client when a request is given.

    Args:
        action: What happened, e.g. ``pull``, ``drain``, ``refused agent``.
        request: The Litestar request (or ASGI scope) that asked, if any.
        level: The log level; a WARNING (a refusal) repeated within
            :data:`REPEAT_WINDOW_S` is counted, not written again.
        **fields: What it acted on; empty values are left out.
    """
    if not audit_log.isEnabledFor(level):
        return
    scope = getattr(request, "scope", request) if request is not None else None
    if isinstance(scope, dict):
        client = scope.get("client")
        fields.setdefault("client", client[0] if client else "")
        fields.setdefault("key_name", scope.get("herd_api_key", ""))
    kept = {k: v for k, v in fields.items() if v not in (None, "")}
    if level >= logging.WARNING:
        repeats = _repeats(action, kept)
        if repeats is None:
            return
        if repeats:
            kept["repeated"] = repeats
    text = " ".join(f"{k}={_quote(v)}" for k, v in kept.items())
    audit_log.log(level, "%s%s", action, f" {text}" if text else "", extra={"audit": kept})


def _repeats(action: str, fields: dict[str, Any]) -> int | None:
    """None to stay quiet; else how many identical lines were left out since the last one."""
    now = time.monotonic()
    key = (action, *sorted((k, str(v)) for k, v in fields.items()))
    seen = _last_seen.get(key)
    if seen is not None and now - seen[0] < REPEAT_WINDOW_S:
        seen[1] += 1
        return None
    if len(_last_seen) >= _MAX_REMEMBERED:
        _last_seen.clear()  # a flood of distinct lines: start counting afresh
    _last_seen[key] = [now, 0]
    return int(seen[1]) if seen is not None else 0


def _quote(value: Any) -> str:
    text = str(value)
    return repr(text) if (not text or any(c.isspace() for c in text)) else text
