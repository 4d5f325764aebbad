"""Where ``previous_response_id`` finds earlier turns: a bounded, expiring store (pure).

OpenAI keeps responses server-side; herd keeps the conversation of each finished response
(as Ollama messages, instructions left out) in memory, bounded in count and in time: the
least recently used entry goes first when the store is full, and an entry older than its
time to live is gone. A router restart forgets everything.

Example:
    >>> store = ResponseStore(max_entries=2, ttl_seconds=60, clock=lambda: 0.0)
    >>> store.put("resp_1", [{"role": "user", "content": "hi"}])
    >>> store.get("resp_1")[0]["content"], store.get("resp_2")
    ('hi', None)
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

__all__ = ["DEFAULT_MAX_ENTRIES", "DEFAULT_TTL_SECONDS", "ResponseStore"]

DEFAULT_MAX_ENTRIES = 2000
"""Responses kept at most; the least recently used goes first."""

DEFAULT_TTL_SECONDS = 3600.0
"""How long a response can be continued with ``previous_response_id`` (one hour)."""


class ResponseStore:
    """Conversations by response id, LRU-bounded and expiring.

    Args:
        max_entries: How many responses to keep.
        ttl_seconds: How long each one is kept after it was stored.
        clock: Monotonic seconds (tests pass their own).
    """

    def __init__(
        self,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_entries = max(1, max_entries)
        self.ttl_seconds = ttl_seconds
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, list[dict[str, Any]]]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def put(self, response_id: str, messages: list[dict[str, Any]]) -> None:
        """Keep the whole conversation up to and including this response's output."""
        now = self._clock()
        self._entries[response_id] = (now + self.ttl_seconds, messages)
        self._entries.move_to_end(response_id)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        self._expire(now)

    def get(self, response_id: str) -> list[dict[str, Any]] | None:
        """The conversation of a response, or None when unknown or expired."""
        entry = self._entries.get(response_id)
        if entry is None:
            return None
        if entry[0] <= self._clock():
            del self._entries[response_id]
            return None
        self._entries.move_to_end(response_id)
        return entry[1]

    def _expire(self, now: float) -> None:
        # Entries are in use order, not expiry order: drop expired ones from the old end
        # until a live one, which bounds the work per put.
        while self._entries:
            key, (expires, _) = next(iter(self._entries.items()))
            if expires > now:
                break
            del self._entries[key]
