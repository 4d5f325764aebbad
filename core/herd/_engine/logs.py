"""Logging for ``herd`` and ``herd-node``: quiet by default, text or JSON, an access log.

herd's own loggers (``herd.*``, ``herd_node``, the built-in plugins) log at the configured
level; everything else (httpx, aiohttp, uvicorn, litestar, ...) only from WARNING up, so a
node agent does not write four httpx lines per poll. ``herd.audit`` carries one line per
administrative action (see :mod:`herd._engine.audit`); ``herd.access`` one line per HTTP
request when the access log is on.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from datetime import datetime
from typing import Any, TextIO

__all__ = ["AccessLog", "JsonFormatter", "configure_logging"]

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: Loggers that follow the configured level; every other logger stays at WARNING.
OWN_LOGGERS = ("herd", "herd_node", "herd_plugins", "herd_contrib", "herd_services", "herd_sim")
_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "taskName",
}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and any ``extra`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            # with its UTC offset: a collector in another zone must not guess the time
            "time": datetime.fromtimestamp(record.created)
            .astimezone()
            .isoformat("T", "milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str, fmt: str = "text", stream: TextIO | None = None) -> None:
    """Send every log line to ``stream`` (stderr) as text or JSON.

    Args:
        level: herd's level (debug, info, warning, error, critical).
        fmt: ``text`` or ``json``.
        stream: Where lines go (default ``sys.stderr``).
    """
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    for name in OWN_LOGGERS:
        logging.getLogger(name).setLevel(level.upper())
    # uvicorn installs its own handlers unless told not to; ours format every line alike.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        noisy = logging.getLogger(name)
        noisy.handlers.clear()
        noisy.propagate = True
        noisy.setLevel(logging.WARNING)


class AccessLog:
    """ASGI middleware: one ``herd.access`` line per request once its response is sent.

    Installed only when the access log is on, so the hot path pays nothing otherwise.
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self.log = logging.getLogger("herd.access")

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        seen: dict[str, Any] = {"status": 0, "bytes": 0, "node": ""}

        async def watching_send(message: Any) -> None:
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
                for name, value in message.get("headers", ()):
                    if name.lower() == b"x-herd-node":
                        seen["node"] = value.decode("latin-1")
            elif message["type"] == "http.response.body":
                seen["bytes"] += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, watching_send)
        finally:
            self._line(scope, seen, (time.perf_counter() - started) * 1000)

    def _line(self, scope: Any, seen: dict[str, Any], ms: float) -> None:
        client = scope.get("client") or ("-", 0)
        path = scope.get("path", "")
        if scope.get("query_string"):
            path += "?" + scope["query_string"].decode("latin-1")
        fields = {
            "client": client[0],
            "method": scope.get("method", ""),
            "path": path,
            "status": seen["status"],
            "bytes": seen["bytes"],
            "ms": round(ms, 1),
            "node": seen["node"],
        }
        node = f" node={seen['node']}" if seen["node"] else ""
        self.log.info(
            '%s "%s %s" %d %dB %.1fms%s',
            client[0],
            fields["method"],
            path,
            seen["status"],
            seen["bytes"],
            ms,
            node,
            extra={"http": fields},
        )
