"""decode_header_pairs: the joined decode and the one-by-one fallback give the same text."""

from __future__ import annotations

import pytest
from herd.header_text import decode_header_pairs

PAIRS = [(b"Host", b"x"), (b"X-Name", b"caf\xe9"), (b"X-Name", b""), (b"ACCEPT", b"*/*")]


@pytest.mark.parametrize("lower", [False, True])
def test_joined_and_one_by_one_agree(lower: bool) -> None:
    def one_by_one(pairs: list) -> list:
        return [
            (n.decode("latin-1").lower() if lower else n.decode("latin-1"), v.decode("latin-1"))
            for n, v in pairs
        ]

    assert list(decode_header_pairs(PAIRS, lower)) == one_by_one(PAIRS)
    # a newline (HTTP lets none through) splits the joined text unevenly: one by one
    odd = [*PAIRS, (b"X-Odd", b"a\nb")]
    assert list(decode_header_pairs(odd, lower)) == one_by_one(odd)
    assert list(decode_header_pairs([], lower)) == []
