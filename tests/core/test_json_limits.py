"""``json_problem``: the JSON no decoder should meet (numbers a double cannot hold, nesting
past the limit) is named; the same text inside strings, and ordinary bodies, are fine."""

from __future__ import annotations

import json

import pytest
from herd.protocol.limits import MAX_JSON_DEPTH, json_problem

CHAT = {"model": "llama3.2:3b", "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize(
    "number",
    [b"1e400", b"-2E+999", b"9" * 400, b"0." + b"1" * 10 + b"e9999", b"1" * 310 + b".5"],
)
def test_a_number_out_of_range_is_named(number: bytes) -> None:
    body = b'{"model": "m", "options": {"seed": ' + number + b"}}"
    assert json_problem(body) == f"number out of range: {number[:40].decode()}"


@pytest.mark.parametrize(
    "body",
    [
        json.dumps(CHAT).encode(),
        json.dumps({**CHAT, "options": {"temperature": 1e300, "top_p": 2.5e-7}}).encode(),
        json.dumps(
            {**CHAT, "messages": [{"role": "user", "content": "1e400 " + "9" * 400}]}
        ).encode(),
        json.dumps({**CHAT, "messages": [{"role": "user", "content": "[" * 5000}]}).encode(),
        b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH,
    ],
    ids=["chat", "fine-numbers", "numbers-in-a-string", "brackets-in-a-string", "at-the-limit"],
)
def test_fine_bodies_have_no_problem(body: bytes) -> None:
    assert json_problem(body) is None


def test_nesting_past_the_limit_is_named() -> None:
    depth = MAX_JSON_DEPTH + 1
    assert json_problem(b"[" * depth + b"]" * depth) == (
        f"JSON nested deeper than {MAX_JSON_DEPTH} levels"
    )
