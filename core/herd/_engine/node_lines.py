"""A node's NDJSON answer read as JSON: where it ends, its in-band error, its statistics.

Every line is decoded (msgspec skips the fields routing does not need, so this costs well
under a microsecond a line): a node may write any valid JSON (spaces after colons, keys
in any order, ``\\u`` escapes, CRLF line ends, a last line with no newline) and herd still
knows when its answer finished and what it cost. A line that is not a JSON object is a
broken answer, never relayed.
"""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = ["LineFields", "NodeLines", "split_lines"]


class LineFields(msgspec.Struct):
    """The fields of one line that the router reads (Ollama's names)."""

    done: bool = False
    error: Any = None
    prompt_eval_count: int = 0
    eval_count: int = 0
    eval_duration: int = 0
    load_duration: int = 0


_decode = msgspec.json.Decoder(LineFields).decode


def split_lines(block: bytes) -> list[bytes]:
    """The non-blank lines of a block, each ending in ``\\n``."""
    return [line + b"\n" for line in block.split(b"\n") if line.strip()]


def error_text(error: Any) -> str:
    """An in-band error's message, whether a string or OpenAI's ``{"message": ...}``."""
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return error["message"] or "the node reported an error"
    return str(error) if error else "the node reported an error"


class NodeLines:
    """Reads one answer's lines as they pass, and remembers how it ended.

    Attributes:
        final: The fields of the line with ``done: true`` (None until it came).
        error: The node's in-band error message ("" when none came).
        bad: Why a line was refused ("" while every line was JSON).
    """

    __slots__ = ("bad", "error", "final")

    def __init__(self) -> None:
        self.final: LineFields | None = None
        self.error = ""
        self.bad = ""

    @property
    def ended(self) -> bool:
        """The answer said it finished: a final line or an in-band error."""
        return self.final is not None or bool(self.error)

    def check(self, block: bytes) -> int:
        """Read every line of ``block``.

        Returns:
            ``len(block)`` when every line is a JSON object, else the offset where the
            first bad line starts (what comes before it may still be relayed).
        """
        size = len(block)
        start = 0
        while start < size:
            end = block.find(b"\n", start)
            if end < 0:
                end = size
            line = block[start:end]
            if line and not line.isspace():
                try:
                    fields = _decode(line)
                except (msgspec.DecodeError, msgspec.ValidationError):
                    shown = line[:80].decode("utf-8", "replace")
                    self.bad = f"the node sent a line that is not a JSON object: {shown!r}"
                    return start
                if fields.error is not None:
                    self.error = error_text(fields.error)
                elif fields.done:
                    self.final = fields
            start = end + 1
        return size
