"""HTTP header bytes as text: every name and value decoded in two calls, not two per header.

Header names and values are Latin-1 on the wire (RFC 9110 keeps them to visible ASCII, and
old servers send Latin-1 in values). A request or a node's reply has several headers and
they are read once per request, so they are joined with newlines, decoded once for the
names and once for the values, and split again: HTTP lets no newline through, so the
parts add up. Should one slip through, they do not, and each is decoded on its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from operator import itemgetter

__all__ = ["decode_header_pairs"]

_first, _second = itemgetter(0), itemgetter(1)


def decode_header_pairs(
    pairs: Sequence[tuple[bytes, bytes]], lower: bool = False
) -> Iterable[tuple[str, str]]:
    """``pairs`` as ``(name, value)`` text, in order; names in lower case with ``lower``.

    Example:
        >>> dict(decode_header_pairs([(b"Content-Type", b"text/plain")], lower=True))
        {'content-type': 'text/plain'}
    """
    names = b"\n".join(map(_first, pairs)).decode("latin-1")
    if lower:
        names = names.lower()
    split_names = names.split("\n")
    values = b"\n".join(map(_second, pairs)).decode("latin-1").split("\n")
    if pairs and len(split_names) == len(values) == len(pairs):
        return zip(split_names, values)  # noqa: B905 (lengths checked: strict= costs a dict)
    if lower:
        return [(n.decode("latin-1").lower(), v.decode("latin-1")) for n, v in pairs]
    return [(n.decode("latin-1"), v.decode("latin-1")) for n, v in pairs]
