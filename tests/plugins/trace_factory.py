"""Traces for the trace-sink tests: one factory, sensible defaults, any field overridden."""

from __future__ import annotations

import itertools
import time
from typing import Any

from herd import RequestTrace
from herd.trace import AttemptRecord

_ids = itertools.count(1)


def make_trace(**fields: Any) -> RequestTrace:
    """A completed chat on node ``n1``, received ``ago`` seconds before ``now`` (default:
    1 s before the current time), one second long with a 100 ms first byte.

    ``node=""`` makes a request that never got a first byte (rejected or failed early).
    """
    now = fields.pop("now", time.time())
    received = now - fields.pop("ago", 1.0)
    latency_ms = fields.get("latency_ms", 1000.0)
    ttft_ms = fields.get("ttft_ms", 100.0)
    node = fields.get("node", "n1")
    values: dict[str, Any] = {
        "request_id": f"req{next(_ids):06d}",
        "api": "ollama",
        "endpoint": "chat",
        "kind": "text",
        "model": "llama3.2:3b",
        "served_model": "llama3.2:3b" if node else "",
        "node": node,
        "received_at": received,
        "first_byte_at": received + ttft_ms / 1000.0 if node else 0.0,
        "done_at": received + latency_ms / 1000.0,
        "ttft_ms": ttft_ms if node else 0.0,
        "latency_ms": latency_ms,
        "prompt_tokens": 10,
        "completion_tokens": 20,
        "tokens_per_second": 40.0,
        "scores": {node: {"thermal": 1.0, "queue-depth": 0.5}} if node else {},
        "attempts": (
            [AttemptRecord(node, received + 0.001, received + ttft_ms / 1000.0, "", 200)]
            if node
            else []
        ),
    }
    values.update(fields)
    return RequestTrace(**values)
