"""Limits on what a request body may hold, checked before any decoder sees it.

A JSON decoder that meets 100,000 nested brackets recurses until Python stops it, and a
number like ``1e400`` has no ``float``; both are the client's mistake and get a 400, not a
500. :func:`json_problem` finds them in time linear in the body (C-speed byte scans), so it
can run on every request. Model names are capped at :data:`MAX_MODEL_NAME` characters in
every protocol (``ModelName`` in the request Structs): a name is an identifier, and a 10 MB
one would be copied into every trace.

Example:
    >>> json_problem(b'{"model": "m", "messages": []}') is None
    True
    >>> json_problem(b"[" * 100 + b"]" * 100)
    'JSON nested deeper than 64 levels'
    >>> json_problem(b'{"options": {"temperature": 1e400}}')
    'number out of range: 1e400'
"""

from __future__ import annotations

import math
import re
from typing import Annotated

import msgspec

__all__ = ["MAX_JSON_DEPTH", "MAX_MODEL_NAME", "MAX_NAME", "ModelName", "Name", "json_problem"]

MAX_JSON_DEPTH = 64
"""Deepest nesting of objects and arrays a request may use (JSON schemas need ~10)."""

MAX_MODEL_NAME = 256
"""Longest model name (``registry/namespace/name:tag``) a request may carry."""

MAX_NAME = 256
"""Longest node name or other identifier a request may carry."""

ModelName = Annotated[str, msgspec.Meta(max_length=MAX_MODEL_NAME)]
"""A model name in a request Struct: at most :data:`MAX_MODEL_NAME` characters."""

Name = Annotated[str, msgspec.Meta(max_length=MAX_NAME)]
"""A node name or other identifier in a request Struct."""

_NUMBER = re.compile(rb"-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?")
_DIGITS_TO_ZERO = bytes.maketrans(b"123456789", b"000000000")
_BRACKETS = bytes.maketrans(b"{}", b"[]")
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_CHUNK = 1 << 20


def _outside_strings(body: bytes) -> bytes:
    """The JSON text with every string's content removed (escapes first, so an escaped
    quote does not end a string); byte-level operations only, a window at a time."""
    if body.find(b'"') < 0:
        return body
    if body.find(b"\\") >= 0:
        body = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    kept: list[bytes] = []
    inside = False
    for start in range(0, len(body), _CHUNK):
        pieces = body[start : start + _CHUNK].split(b'"')
        first = 1 if inside else 0
        kept.append(b"".join(pieces[first::2]))
        inside = (len(pieces) - 1 + inside) % 2 == 1
    return b"".join(kept)


_LONG_RUN = b"0" * 300  # digits enough to overflow a double with no exponent


def _big_number(text: bytes) -> bytes | None:
    """A number in ``text`` (no strings) that is infinite as a double, or None."""
    zeros = text.translate(_DIGITS_TO_ZERO)
    # find, not `in`: `bytes in bytes` first tries its operand as an int, and makes and
    # drops a TypeError (three times per request, here)
    long_run = zeros.find(_LONG_RUN)
    if zeros.find(b"0e") < 0 and zeros.find(b"0E") < 0 and long_run < 0:
        return None  # (the usual body: no exponent, no run of 300 digits)
    at = [i for probe in (b"0e", b"0E") for i in _find_all(zeros, probe)]
    if long_run >= 0:
        at.append(long_run)
    for index in at:
        begin = index
        while begin > 0 and text[begin - 1 : begin] in b"0123456789.-":
            begin -= 1
        match = _NUMBER.match(text, begin)
        if match is not None and math.isinf(float(match.group())):
            return match.group()
    return None


def _find_all(text: bytes, probe: bytes) -> list[int]:
    found, index = [], text.find(probe)
    while index >= 0 and len(found) < 10_000:
        found.append(index)
        index = text.find(probe, index + 1)
    return found


def json_problem(body: bytes, max_depth: int = MAX_JSON_DEPTH) -> str | None:
    """What makes ``body`` unsafe to decode (too deep, a number out of range), or None.

    The common case costs a few byte scans; strings are taken out (the slower, exact
    path) only when brackets or numbers inside them could be what looked wrong. Malformed
    JSON is not reported here: the decoder says what is wrong with it.
    """
    if len(body) < 300 and body.find(b"e") < 0 and body.find(b"E") < 0:
        deep_candidate = body.count(b"[") + body.count(b"{") > max_depth
        if not deep_candidate:
            return None
    if _big_number(body) is not None:
        number = _big_number(_outside_strings(body))
        if number is not None:
            return f"number out of range: {number[:40].decode('ascii', 'replace')}"
    if body.count(b"[") + body.count(b"{") <= max_depth or not _too_deep(body, max_depth):
        return None
    if _too_deep(_outside_strings(body), max_depth):
        return f"JSON nested deeper than {max_depth} levels"
    return None


def _too_deep(text: bytes, max_depth: int) -> bool:
    """Whether the brackets in ``text`` nest deeper than ``max_depth``: each pass removes
    the innermost level of every ``[...]``; unbalanced brackets are the decoder's to report."""
    brackets = text.translate(_BRACKETS, _NOT_BRACKETS)
    for _ in range(max_depth):
        shorter = brackets.replace(b"[]", b"")
        if not shorter or len(shorter) == len(brackets):
            return False
        brackets = shorter
    return True
