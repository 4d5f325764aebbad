"""The W3C trace id of a request, shared by the DuckDB and OpenTelemetry sinks.

A request that arrived with a valid ``traceparent`` belongs to the caller's trace. One
that did not gets a trace id derived from its request id, so a row in DuckDB and the
spans exported over OTLP carry the same id without the hot path generating anything.
"""

from __future__ import annotations

import hashlib
import re

__all__ = ["derived_trace_id", "parse_traceparent", "trace_id_of"]

_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16


def parse_traceparent(header: str) -> tuple[str, str, int] | None:
    """``(trace_id, parent_span_id, flags)`` from a W3C ``traceparent``, or None if invalid.

    Follows the W3C rules the OpenTelemetry propagator applies: version ``ff`` and all-zero
    ids are invalid; version ``00`` allows nothing after the flags.
    """
    match = _TRACEPARENT.fullmatch(header.strip().lower())
    if match is None:
        return None
    version, trace_id, span_id, flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest):
        return None
    if trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
        return None
    return trace_id, span_id, int(flags, 16)


def derived_trace_id(request_id: str) -> str:
    """A stable 32-hex-digit trace id for a request that came without a ``traceparent``.

    MD5 (an id, not a secret) because DuckDB has it too: the schema migration that added
    ``trace_id`` fills old rows with ``md5(request_id)``, the same value.
    """
    return hashlib.md5(request_id.encode(), usedforsecurity=False).hexdigest()


def trace_id_of(request_id: str, traceparent: str) -> str:
    """The trace id a request's spans and its DuckDB row carry."""
    if traceparent:
        parsed = parse_traceparent(traceparent)
        if parsed is not None:
            return parsed[0]
    return derived_trace_id(request_id)
