"""A broken node's answer is never a success, and a client's mistake is never the node's.

Broken: an empty 200, non-JSON lines, a stream with no final object -> a 502 in the
client's protocol before the first byte, an in-band error after it; traced failed.
The client's: a node's 400 and an unknown model -> traced rejected, with the reason, and
no mark against the node.
"""

from __future__ import annotations

import json

import httpx
import pytest

from tests.core.odd_node import MODEL, OddNode
from tests.core.test_exchange_streams import CHAT, collector, odd, one_trace, router
from tests.core.trace_collector import TRACES

__all__ = ["collector", "odd", "router"]  # fixtures shared with the stream tests


def _lines(reply: httpx.Response) -> list[dict]:
    return [json.loads(line) for line in reply.text.splitlines() if line.strip()]


@pytest.mark.parametrize("path", ["/api/chat", "/api/generate"])
@pytest.mark.parametrize("stream", [True, False])
def test_an_empty_200_is_a_502_not_an_empty_success(router, odd, path, stream) -> None:
    odd.mode = "empty"
    body = {**CHAT, "prompt": "hi", "stream": stream}
    reply = httpx.post(router.url + path, json=body, timeout=30)
    assert reply.status_code == 502
    assert "empty answer" in reply.json()["error"]
    trace = one_trace()
    assert trace.status == "failed" and trace.http_status == 502


def test_an_empty_200_is_a_502_in_openai_form(router, odd) -> None:
    odd.mode = "empty"
    reply = httpx.post(router.url + "/v1/chat/completions", json=CHAT, timeout=30)
    assert reply.status_code == 502
    assert "empty answer" in reply.json()["error"]["message"]
    assert one_trace().status == "failed"


@pytest.mark.parametrize("stream", [True, False])
def test_a_non_json_first_answer_is_a_502(router, odd, stream) -> None:
    odd.mode = "garbage_first"
    reply = httpx.post(router.url + "/api/chat", json={**CHAT, "stream": stream}, timeout=30)
    assert reply.status_code == 502
    assert "not" in reply.json()["error"] and "JSON" in reply.json()["error"]
    assert one_trace().status == "failed"


def test_a_non_json_line_mid_stream_becomes_an_in_band_error(router, odd) -> None:
    odd.mode = "garbage_mid"
    reply = httpx.post(router.url + "/api/chat", json=CHAT, timeout=30)
    assert reply.status_code == 200  # the first byte had gone out
    assert b"proxy error" not in reply.content  # the garbage is never relayed
    lines = _lines(reply)
    assert "error" in lines[-1] and not any(line.get("done") for line in lines)
    trace = one_trace()
    assert trace.status == "failed" and "not a JSON object" in trace.error


def test_a_stream_without_its_final_object_ends_in_an_error(router, odd) -> None:
    odd.mode = "no_final"
    reply = httpx.post(router.url + "/api/chat", json=CHAT, timeout=30)
    assert "ended the stream early" in _lines(reply)[-1]["error"]
    assert one_trace().status == "failed"


def test_a_node_silent_mid_stream_ends_in_a_timeout_error(odd, make_router, collector) -> None:
    odd.mode = "stall_mid"
    router = make_router(
        nodes=[odd.entry()], plugins={"load": [collector]}, routing={"read_timeout": 0.5}
    )
    router.poll_now()
    reply = httpx.post(router.url + "/api/chat", json=CHAT, timeout=30)
    assert reply.status_code == 200  # two lines had gone out
    lines = _lines(reply)
    assert len(lines) == 3 and "timed out" in lines[-1]["error"]
    trace = one_trace()
    assert trace.status == "failed" and "mid-stream: timed out" in trace.error


def test_an_unfinished_openai_stream_is_never_a_stop(router, odd) -> None:
    odd.mode = "no_final"
    body = {**CHAT, "stream": True}
    reply = httpx.post(router.url + "/v1/chat/completions", json=body, timeout=30)
    events = [line[6:] for line in reply.text.splitlines() if line.startswith("data: ")]
    assert "[DONE]" not in events
    decoded = [json.loads(e) for e in events]
    assert "error" in decoded[-1]
    assert all(c["finish_reason"] is None for e in decoded for c in e.get("choices", []))
    assert one_trace().status == "failed"


def test_a_nodes_400_is_the_clients_rejection_not_the_nodes_failure(router, odd) -> None:
    odd.mode = "refuse"
    reply = httpx.post(router.url + "/api/chat", json=CHAT, timeout=30)
    assert reply.status_code == 400 and "does not support" in reply.json()["error"]
    trace = one_trace()
    assert trace.status == "rejected" and "does not support" in trace.error
    assert trace.node == "odd" and trace.http_status == 400
    assert all(a.error == "" for a in trace.attempts)  # availability sees no failure
    availability = next(
        s for s in router.gateway.signals if s.name == "availability"
    )  # the signal learned from the trace: the node keeps a perfect record
    assert availability.scores(None, [router.gateway.node("odd")]) == [1.0]


def test_a_nodes_400_in_openai_form_is_rejected(router, odd) -> None:
    odd.mode = "refuse"
    reply = httpx.post(router.url + "/v1/chat/completions", json=CHAT, timeout=30)
    assert reply.status_code == 400 and "does not support" in reply.json()["error"]["message"]
    assert one_trace().status == "rejected"


def test_an_unknown_model_is_rejected_and_names_no_served_model(router) -> None:
    reply = httpx.post(router.url + "/api/chat", json={**CHAT, "model": "nope:1b"}, timeout=30)
    assert reply.status_code == 404
    trace = one_trace()
    assert trace.status == "rejected" and trace.served_model == "" and trace.node == ""
    assert trace.model == "nope:1b"


@pytest.mark.parametrize(
    ("path", "body", "headers"),
    [
        ("/api/chat", b'{"model": "odd:1b", "messages": [', {}),
        ("/api/chat", json.dumps(CHAT).encode(), {"X-Herd-Tags": "key:forged"}),
        ("/v1/chat/completions", json.dumps({**CHAT, "temperature": "hot"}).encode(), {}),
    ],
)
def test_bad_input_is_a_traced_rejection_never_the_nodes(router, path, body, headers) -> None:
    headers = {"Content-Type": "application/json", **headers}
    reply = httpx.post(router.url + path, content=body, headers=headers, timeout=30)
    assert reply.status_code == 400
    trace = one_trace()
    assert trace.status == "rejected" and trace.http_status == 400 and trace.error
    assert trace.node == "" and trace.served_model == ""


def test_the_node_still_serves_after_broken_answers(router, odd) -> None:
    odd.mode = "ok"
    reply = httpx.post(router.url + "/api/chat", json={**CHAT, "stream": False}, timeout=30)
    assert reply.status_code == 200 and reply.json()["model"] == MODEL
    assert TRACES and TRACES[-1].status == "completed"


__all__ += ["OddNode"]


@pytest.mark.parametrize(
    ("options", "field"),
    [({"temperature": "hot"}, "options.temperature"), ({"stop": "###"}, "options.stop")],
)
def test_an_option_of_the_wrong_type_is_the_clients_400_before_any_node(
    router, odd, options, field
) -> None:
    """Ollama answers a wrong option type with a 500, which would read as a failing node:
    herd refuses it first, and the node never hears of it."""
    asked = odd.requests
    reply = httpx.post(router.url + "/api/chat", json={**CHAT, "options": options}, timeout=30)
    assert reply.status_code == 400 and field in reply.json()["error"]
    assert odd.requests == asked
    trace = one_trace()
    assert trace.status == "rejected" and trace.node == ""


def test_integer_options_written_as_floats_are_read_as_ollama_reads_them(router, odd) -> None:
    """JSON has one kind of number: Ollama takes 2048.0 for num_ctx (truncating), so does herd."""
    body = {**CHAT, "options": {"num_ctx": 2048.0, "num_predict": 64.0, "temperature": 1}}
    reply = httpx.post(router.url + "/api/chat", json=body, timeout=30)
    assert reply.status_code == 200
    assert json.loads(odd.last_body)["options"]["num_ctx"] == 2048.0  # passed on as written
    assert one_trace().status == "completed"
