"""node_lines: a node's answer read as JSON, whatever way the node writes it (pure)."""

from __future__ import annotations

import json

from herd._engine.node_lines import NodeLines, answer_problem, model_renamer, split_lines
from herd.replies import WholeReply
from hypothesis import example, given
from hypothesis import strategies as st


def test_any_valid_json_ends_the_answer_with_its_statistics() -> None:
    final = {"eval_count": 3, "message": {"content": "✓"}, "done": True, "prompt_eval_count": 2}
    block = (json.dumps({"done": False, "x": "é"}) + "\r\n" + json.dumps(final)).encode()
    lines = NodeLines()
    assert lines.check(block) == len(block)
    assert lines.ended and lines.final is not None and not lines.error
    assert (lines.final.eval_count, lines.final.prompt_eval_count) == (3, 2)


def test_a_statistic_of_another_type_still_ends_the_answer() -> None:
    float_count = b'{"done": true, "eval_count": 2.0, "prompt_eval_count": 3}\n'
    text_count = b'{"done":false}\n{"done":true,"eval_count":"7","prompt_eval_count":4}'
    odd_counts = b'{"done":true,"eval_count":2.5,"prompt_eval_count":"x","eval_duration":"9"}\n'
    for block, counts in ((float_count, (2, 3)), (text_count, (7, 4)), (odd_counts, (2, 0))):
        lines = NodeLines()
        assert lines.check(block) == len(block)
        assert lines.final is not None
        assert (lines.final.eval_count, lines.final.prompt_eval_count) == counts
    assert lines.final.eval_duration == 9  # (the odd block's other statistic is kept)


def test_a_whole_answer_is_judged_as_a_streamed_line_would_be() -> None:
    counted = WholeReply(200, b'{"done": true, "eval_count": "4"}')
    lines = NodeLines()
    assert answer_problem(counted, lines, "chat", False) == ""
    assert lines.final is not None and lines.final.eval_count == 4
    # "true" is no boolean: a stream's line check refuses it, and so does the whole answer
    spelled = WholeReply(200, b'{"done": "true"}')
    assert answer_problem(spelled, NodeLines(), "chat", False) == "the answer is not a JSON object"
    assert NodeLines().check(b'{"done": "true"}\n') == 0


def test_the_pieces_of_an_answer_are_counted_in_every_way_they_come() -> None:
    token = b'{"message": {"content": "a"}, "done": false}\n'
    lines = NodeLines()
    lines.check(token)  # one line
    lines.check(token * 3)  # several at once
    lines.check(token + b"\n" + token)  # a blank line between: read line by line
    assert lines.plain == 6 and not lines.ended
    lines.check(token + b'{"done": true, "eval_count": 9}\n')  # the last piece, and the end
    assert lines.plain == 7 and lines.final is not None and lines.final.eval_count == 9
    errored = NodeLines()
    errored.check(token * 2 + b'{"error": "gpu fell off"}\n')
    assert errored.plain == 2 and errored.error == "gpu fell off"


def test_done_inside_a_string_is_not_the_end() -> None:
    lines = NodeLines()
    line = json.dumps({"message": {"content": '"done":true'}, "done": False}).encode()
    assert lines.check(line + b"\n") == len(line) + 1 and not lines.ended


def test_an_in_band_error_is_read_in_either_shape() -> None:
    for error, message in (("gpu fell off", "gpu fell off"), ({"message": "oom"}, "oom")):
        lines = NodeLines()
        lines.check(json.dumps({"error": error}).encode())
        assert lines.error == message and lines.ended


def test_a_bad_line_is_found_where_it_starts() -> None:
    good = b'{"done": false}\n'
    block = good + b"<html>502</html>\n" + b'{"done": true}\n'
    lines = NodeLines()
    assert lines.check(block) == len(good)
    assert "not a JSON object" in lines.bad and not lines.ended
    assert NodeLines().check(b"[1, 2]\n") == 0  # JSON, but not an object


def test_blank_lines_are_skipped_and_split_keeps_whole_lines() -> None:
    assert NodeLines().check(b"\n\r\n  \n") == len(b"\n\r\n  \n")
    assert split_lines(b'{"a":1}\n\n{"b":2}') == [b'{"a":1}\n', b'{"b":2}\n']


def test_the_renamer_handles_compact_and_spaced_spellings() -> None:
    rename = model_renamer("llama3.2:3b", "tiny")
    assert rename(b'{"model":"llama3.2:3b","done":false}') == b'{"model":"tiny","done":false}'
    assert rename(b'{"model" : "llama3.2:3b"}') == b'{"model":"tiny"}'
    untouched = b'{"model":"other"}'
    assert rename(untouched) is untouched


_PIECES = [
    b'{"done": false}',
    b'{"done":true,"eval_count":7}',
    b'{"error": "oom"}',
    b'{"error": {"message": "gone"}}',
    b'{"error": null}',
    b'{"done": true, "eval_count": 1.5}',
    b'{"a": [[1',
    b"2]]}",
    b'{"message": {"content": "a\\nb"}}',
    b"[1, 2]",
    b"<html>",
    b'{"a":',
    b"1}",
    b'{"a": 1}, {"b": 2}',
    b'{"a": 1}{"b": 2}',
    b'{"a": 1} {"b": 2}',
    b"",
    b"   ",
    b"\r",
    b"\x0c",  # whitespace to Python, not to JSON
    b'{"done": false}\x0c',
    b"null",
    b'"text"',
]


@given(
    st.lists(st.sampled_from(_PIECES), min_size=1, max_size=6),
    st.sampled_from([b"\n", b"\r\n"]),
    st.booleans(),
)
# found by this test in CI: the block's last line ends in \x0c, which JSON does not allow
@example([b'{"done": false}', b'{"done": false}\x0c'], b"\n", False)
def test_reading_a_block_at_once_agrees_with_reading_it_line_by_line(
    pieces: list[bytes], end: bytes, last_end: bool
) -> None:
    block = end.join(pieces) + (end if last_end else b"")
    at_once, each = NodeLines(), NodeLines()
    assert at_once.check(block) == each.check_each_line(block), block
    assert (at_once.final, at_once.error, at_once.bad) == (each.final, each.error, each.bad)
    assert at_once.plain == each.plain
