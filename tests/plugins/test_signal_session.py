"""Session affinity: a conversation returns to its node until that node is overloaded."""

from __future__ import annotations

from herd_plugins.signal_session import SessionAffinitySignal, session_of

from tests.plugins.node_factory import make_node, make_request, make_signal, score_all
from tests.plugins.trace_factory import make_trace


def later_turn(**fields):
    return make_request(session="chat:abc", follow_up=True, **fields)


def learned(**config):
    signal = make_signal(SessionAffinitySignal, **config)
    signal.observe(make_trace(node="b", session="chat:abc"))
    return signal


def test_a_later_turn_goes_home() -> None:
    nodes = [make_node("a"), make_node("b"), make_node("c")]
    assert score_all(learned(), later_turn(), nodes) == [0.0, 1.0, 0.0]


def test_a_first_turn_or_an_unknown_conversation_is_neutral() -> None:
    nodes = [make_node("a"), make_node("b")]
    first_turn = make_request(session="chat:abc")
    assert score_all(learned(), first_turn, nodes) == [0.5, 0.5]
    assert score_all(learned(), make_request(session="chat:new", follow_up=True), nodes) == [
        0.5,
        0.5,
    ]


def test_a_session_tag_wins_over_the_hash() -> None:
    request = make_request(session="chat:abc", tags=["session:42"])
    assert session_of(request) == "session:42"
    signal = make_signal(SessionAffinitySignal)
    signal.observe(make_trace(node="a", tags=["session:42"]))
    assert score_all(signal, request, [make_node("a"), make_node("b")]) == [1.0, 0.0]


def test_an_overloaded_home_lets_the_conversation_move() -> None:
    busy = make_node("b", in_flight={"qwen2.5:7b": 4}, num_parallel=4)
    nodes = [make_node("a"), busy, make_node("c")]
    assert score_all(learned(max_share_above_mean=0.5), later_turn(), nodes) == [0.5] * 3


def test_a_busy_home_within_its_share_keeps_the_conversation() -> None:
    nodes = [make_node(n, in_flight={"qwen2.5:7b": 4}, num_parallel=4) for n in "abc"]
    assert score_all(learned(), later_turn(), nodes) == [0.0, 1.0, 0.0]


def test_failed_turns_do_not_move_the_home_and_old_sessions_are_forgotten() -> None:
    signal = learned(max_sessions=2)
    signal.observe(make_trace(node="c", session="chat:abc", status="failed"))
    assert signal.home_of("chat:abc") == "b"
    signal.observe(make_trace(node="a", session="chat:x"))
    signal.observe(make_trace(node="a", session="chat:y"))
    assert signal.home_of("chat:abc") is None
