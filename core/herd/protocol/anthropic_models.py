"""Anthropic's Models API shapes (pure): ``GET /v1/models`` and ``GET /v1/models/{id}`` as
the ``anthropic`` SDK reads them.

The same paths serve OpenAI's model list; a client that sends ``anthropic-version`` (every
Anthropic SDK does, no OpenAI one does) gets Anthropic's shape: model objects with ``type``,
``id``, ``display_name`` and ``created_at`` (RFC 3339), newest first, in pages of ``limit``
(1 to 1000, 20 by default) that ``after_id`` and ``before_id`` move through, with
``has_more``, ``first_id`` and ``last_id``.

Example:
    >>> page = model_page([("a:1b", 10), ("b:2b", 20)], limit=1)
    >>> [m["id"] for m in page["data"]], page["has_more"], page["last_id"]
    (['b:2b'], True, 'b:2b')
"""

from __future__ import annotations

import time
from typing import Any

__all__ = ["ModelPageError", "model_info", "model_page"]


class ModelPageError(ValueError):
    """A page that cannot be given: ``param`` names the query parameter at fault."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param


def model_info(model_id: str, created: int) -> dict[str, Any]:
    """One model as Anthropic describes it (``created``: Unix seconds, 0 when unknown)."""
    return {
        "type": "model",
        "id": model_id,
        "display_name": model_id,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(max(created, 0))),
    }


def model_page(
    models: list[tuple[str, int]],
    limit: int | None = None,
    after_id: str | None = None,
    before_id: str | None = None,
) -> dict[str, Any]:
    """One page of ``models`` (``(id, created)`` pairs), newest first.

    Raises:
        ModelPageError: a limit out of range, both cursors, or a cursor no model has.
    """
    size = 20 if limit is None else limit
    if not 1 <= size <= 1000:
        raise ModelPageError("limit: must be between 1 and 1000", "limit")
    if after_id is not None and before_id is not None:
        raise ModelPageError("give after_id or before_id, not both", "before_id")
    ordered = sorted(models, key=lambda m: (-m[1], m[0]))
    ids = [model_id for model_id, _ in ordered]
    start, end = 0, len(ordered)
    for cursor, param in ((after_id, "after_id"), (before_id, "before_id")):
        if cursor is not None and cursor not in ids:
            raise ModelPageError(f"{param}: no model has the id {cursor!r}", param)
    if after_id is not None:
        start = ids.index(after_id) + 1
        chosen = ordered[start : start + size]
        more = start + size < end
    elif before_id is not None:
        end = ids.index(before_id)
        chosen = ordered[max(0, end - size) : end]
        more = end - size > 0
    else:
        chosen = ordered[:size]
        more = size < end
    data = [model_info(model_id, created) for model_id, created in chosen]
    return {
        "data": data,
        "has_more": more,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
    }
