"""A node's NDJSON answer read as JSON: where it ends, its in-band error, its statistics.

Every line is decoded (msgspec skips the fields routing does not need, so this costs well
under a microsecond a line): a node may write any valid JSON (spaces after colons, keys
in any order, ``\\u`` escapes, CRLF line ends, a last line with no newline) and herd still
knows when its answer finished and what it cost. A line that is not a JSON object is a
broken answer, never relayed.

Each line is read for its marks (``done``, ``error``: :class:`LineMarks`); the line that
carries one, once a stream, is read again for its statistics (:func:`line_fields`), and a
statistic of an unexpected type is left at zero rather than breaking an answer that ended.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec

if TYPE_CHECKING:
    from herd.interfaces import UpstreamReply

__all__ = [
    "CHECKED",
    "STREAMING",
    "LineFields",
    "LineMarks",
    "NodeLines",
    "Transform",
    "answer_problem",
    "line_fields",
    "model_renamer",
    "split_lines",
]

Transform = Callable[[bytes], bytes]


class LineFields(msgspec.Struct):
    """The fields of one line that the router reads (Ollama's names)."""

    done: bool = False
    error: Any = None
    prompt_eval_count: int = 0
    eval_count: int = 0
    eval_duration: int = 0
    load_duration: int = 0
    prompt_eval_duration: int = 0
    total_duration: int = 0


class LineMarks(msgspec.Struct):
    """What every line is read for: whether it ends the answer, or reports an error."""

    done: bool = False
    error: Any = None


# (strict: a lax decoder would also take "done": "true", which a stream's line check refuses;
# line_fields reads a count spelled 2.0 or "2" on its own)
_decode = msgspec.json.Decoder(LineFields).decode
_decode_marks = msgspec.json.Decoder(LineMarks).decode
_decode_array = msgspec.json.Decoder(list[LineMarks]).decode
_decode_object = msgspec.json.Decoder(dict).decode
_STATISTICS = tuple(name for name in LineFields.__struct_fields__ if name not in ("done", "error"))
_PLAIN = LineMarks()  # a line that neither ends the answer nor reports an error
_JSON_SPACE = b" \t\r\n"  # JSON's whitespace (bytes.strip's own has \x0b and \x0c too)
#: Endpoints whose answers end with a final object (``done: true``).
STREAMING = frozenset({"chat", "generate"})
#: Endpoints whose answers are JSON objects, checked before their first byte goes out.
CHECKED = frozenset({"chat", "generate", "embed", "embeddings", "show"})


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
        plain: How many lines came that neither end the answer nor report an error: the
            pieces of the answer (one token each, most often), what an answer that stopped
            before its final line is counted by.
    """

    __slots__ = ("bad", "error", "final", "plain")

    def __init__(self) -> None:
        self.final: LineFields | None = None
        self.error = ""
        self.bad = ""
        self.plain = 0

    @property
    def ended(self) -> bool:
        """The answer said it finished: a final line or an in-band error."""
        return self.final is not None or bool(self.error)

    def check(self, block: bytes) -> int:
        """Read every line of ``block``.

        One whole line (a streamed token, most often) is decoded on its own. Several lines
        are decoded in one call, as the JSON array they make when each line end
        becomes a comma. That array holds one element per line exactly when every line is
        one JSON value (a blank line, a value split over two lines or two values on one
        line make it invalid or longer), so any other block is read line by line, which
        also finds where the first bad line starts.

        Returns:
            ``len(block)`` when every line is a JSON object, else the offset where the
            first bad line starts (what comes before it may still be relayed).
        """
        if block.find(b"\n") == len(block) - 1 > 0:  # one line (a token, most often)
            try:
                marks = _decode_marks(block)  # (JSON's whitespace around it is allowed)
            except (msgspec.DecodeError, msgspec.ValidationError):
                return self.check_each_line(block)  # (says why, and where the bad line starts)
            if marks.error is not None or marks.done:
                self._read(line_fields(block))
            else:
                self.plain += 1
            return len(block)
        body = block.rstrip(_JSON_SPACE)  # (not Python's whitespace: \x0c ends no line)
        # find, not `in`: `bytes in bytes` first tries its operand as an int, and raises and
        # clears a TypeError (twice the cost, on every block of every stream)
        if body.find(b"\n") >= 0:  # several lines
            try:
                lines = _decode_array(b"[" + body.replace(b"\n", b",") + b"]")
            except (msgspec.DecodeError, msgspec.ValidationError):
                lines = None
            if lines is not None and len(lines) == body.count(b"\n") + 1:
                # Counted in C, not looped over: the line that ends the answer (or reports
                # an error) is read again in full, once a stream; it is the last one.
                plain = lines.count(_PLAIN)
                if plain == len(lines) - 1 and lines[-1] != _PLAIN:
                    self.plain += plain
                    self._read(line_fields(body[body.rfind(b"\n") + 1 :]))
                elif plain != len(lines):
                    self.check_each_line(block)
                else:
                    self.plain += plain
                return len(block)
        return self.check_each_line(block)  # (a line with no line end, or blank space)

    def check_each_line(self, block: bytes) -> int:
        """:meth:`check`, one line at a time (what it falls back to)."""
        size = len(block)
        start = 0
        while start < size:
            end = block.find(b"\n", start)
            if end < 0:
                end = size
            line = block[start:end]
            if line and not line.isspace():
                try:
                    marks = _decode_marks(line)
                except (msgspec.DecodeError, msgspec.ValidationError):
                    self.bad = "the node sent a line that is not a JSON object"
                    return start
                if marks.error is not None or marks.done:
                    self._read(line_fields(line))
                else:
                    self.plain += 1
            start = end + 1
        return size

    def _read(self, fields: LineFields) -> None:
        if fields.error is not None:
            self.error = error_text(fields.error)
        elif fields.done:
            self.final = fields


def line_fields(line: bytes) -> LineFields:
    """The fields of one line that is a JSON object (checked before).

    A statistic of another type than Ollama's integer is taken when it is a number (a float
    is truncated) or a number's text, and left at zero otherwise; the line still ends the
    answer or reports its error, and the other statistics are kept.
    """
    try:
        return _decode(line)
    except msgspec.ValidationError:
        marks = _decode_marks(line)  # (raises for a `done` that is not a boolean)
        found = _decode_object(line)
        stats = {}
        for name in _STATISTICS:
            value = found.get(name)
            if type(value) is float and math.isfinite(value):
                stats[name] = int(value)
            elif value is not None:
                with contextlib.suppress(msgspec.ValidationError):
                    stats[name] = msgspec.convert(value, int, strict=False)
        return LineFields(done=marks.done, error=marks.error, **stats)


def model_renamer(served: str, requested: str) -> Transform:
    """Puts the client's model name back into a node's lines (one or several at once).

    The compact spelling is replaced with one bytes search (the hot path); any other
    spelling of the ``"model"`` key (spaces around the colon) by a regular expression.
    """
    served_json, requested_json = msgspec.json.encode(served), msgspec.json.encode(requested)
    compact, replacement = b'"model":' + served_json, b'"model":' + requested_json
    spaced = re.compile(rb'"model"\s*:\s*' + re.escape(served_json))

    def rename(block: bytes) -> bytes:
        out = block.replace(compact, replacement)  # the same object when nothing matched
        if out is not block or block.find(b'"model"') < 0:
            return out
        return spaced.sub(replacement, block)

    return rename


def answer_problem(reply: UpstreamReply, lines: NodeLines, endpoint: str, stream: bool) -> str:
    """Why a node's answer is broken, judged before its first byte goes out ("" if not).

    An empty body, a first line (or a whole body) that is not a JSON object, and a whole
    answer to ``chat``/``generate`` without its final object are broken. A node's own
    4xx is not judged here: it is the client's answer.
    """
    if reply.status >= 400 or endpoint not in CHECKED:
        return ""
    if reply.decoded is not None and not reply.streaming:  # a backend built it: no bytes
        try:
            fields = msgspec.convert(reply.decoded, LineFields, from_attributes=True)
        except msgspec.ValidationError:
            return "the answer is not an object of Ollama's fields"
        return _judged(fields, lines, endpoint)
    body = reply.first
    if not body.strip():
        return "empty answer"
    if reply.streaming or stream:
        if lines.check(body) < len(body):
            return lines.bad
        if not reply.streaming and endpoint in STREAMING and not lines.ended:
            return "the answer ended without its final object"
        return ""
    try:
        fields = line_fields(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return "the answer is not a JSON object"
    return _judged(fields, lines, endpoint)


def _judged(fields: LineFields, lines: NodeLines, endpoint: str) -> str:
    lines.final = fields
    if endpoint in STREAMING and fields.error is None and not fields.done:
        return "the answer ended without its final object"
    return ""
