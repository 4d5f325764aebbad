"""Errors reach the client in Ollama's shape with the right status, never an empty 200."""

from __future__ import annotations

import httpx
import msgspec
import ollama
import pytest

from tests.conftest import emulated
from tests.core.processes import send_until_closed


@pytest.fixture
def sim(make_sim):
    return make_sim(name="solo", models=[emulated("llama3.2:3b")])


@pytest.fixture
def router(make_router, sim):
    return make_router(nodes=[sim], limits={"max_body_bytes": 4096})


def test_unknown_model_is_404_in_ollama_shape(router) -> None:
    reply = httpx.post(router.url + "/api/chat", json={"model": "nope", "messages": []})
    assert reply.status_code == 404
    assert reply.json() == {"error": "model 'nope' not found"}
    with pytest.raises(ollama.ResponseError) as info:
        ollama.Client(host=router.url).chat(model="nope", messages=[])
    assert info.value.status_code == 404


def test_malformed_json_is_400(router) -> None:
    reply = httpx.post(router.url + "/api/chat", content=b"{not json")
    assert reply.status_code == 400
    assert "invalid JSON" in reply.json()["error"]


def test_missing_body_is_400(router) -> None:
    reply = httpx.post(router.url + "/api/chat")
    assert reply.status_code == 400
    assert reply.json() == {"error": "missing request body"}


def test_missing_model_is_400(router) -> None:
    reply = httpx.post(router.url + "/api/chat", json={"messages": []})
    assert reply.status_code == 400
    assert reply.json() == {"error": "model is required"}


def test_wrong_field_type_is_400_naming_the_field(router) -> None:
    body = {"model": "llama3.2:3b", "messages": [{"role": "user", "content": ["a"]}]}
    reply = httpx.post(router.url + "/api/chat", json=body)
    assert reply.status_code == 400
    assert "messages[0].content" in reply.json()["error"]


def test_body_over_the_limit_is_413(router) -> None:
    body = {"model": "llama3.2:3b", "messages": [{"role": "user", "content": "x" * 10_000}]}
    reply = httpx.post(router.url + "/api/chat", json=body)
    assert reply.status_code == 413
    assert "too large" in reply.json()["error"]


def _chunked_post(router, body: bytes) -> tuple[int, bytes]:
    """A chunked POST sent in one write (its whole body is here when the router reads
    it); the status and body of the answer."""
    request = (
        b"POST /api/chat HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"Connection: close\r\n\r\n%x\r\n%b\r\n0\r\n\r\n" % (len(body), body)
    )
    head, _, rest = send_until_closed(router.port, request).partition(b"\r\n\r\n")
    return int(head.split()[1]), rest


def test_a_chunked_body_over_the_limit_is_413(router) -> None:
    # no Content-Length to refuse it by: the body is measured once it is read
    body = {"model": "llama3.2:3b", "messages": [{"role": "user", "content": "x" * 10_000}]}
    status, answer = _chunked_post(router, msgspec.json.encode(body))
    assert status == 413
    assert b"too large" in answer
    body["messages"][0]["content"] = "hi"
    status, answer = _chunked_post(router, msgspec.json.encode({**body, "stream": False}))
    assert status == 200, answer


def test_unknown_path_and_wrong_method_answer_like_ollama(router) -> None:
    reply = httpx.get(router.url + "/api/nothing")
    assert reply.status_code == 404 and reply.text == "404 page not found"
    reply = httpx.get(router.url + "/api/chat")
    assert reply.status_code == 405 and reply.text == "405 method not allowed"


def test_node_error_before_first_byte_with_no_other_node_is_502(router, sim) -> None:
    httpx.post(sim.url + "/_sim/fail", json={"count": 3, "status": 500, "error": "boom"})
    reply = httpx.post(
        router.url + "/api/chat",
        json={"model": "llama3.2:3b", "messages": [{"role": "user", "content": "x"}]},
    )
    assert reply.status_code == 502
    assert "boom" in reply.json()["error"]


def test_node_400_is_relayed_as_is(router) -> None:
    body = {
        "model": "llama3.2:3b",
        "messages": [{"role": "user", "content": "x", "images": ["data:image/png;base64,AAAA"]}],
    }
    reply = httpx.post(router.url + "/api/chat", json=body)
    assert reply.status_code == 400
    assert reply.json()["error"]


def test_offline_node_gives_503_with_retry_after(router, sim) -> None:
    sim.stop()
    router.poll_now()
    reply = httpx.post(
        router.url + "/api/chat",
        json={"model": "llama3.2:3b", "messages": [{"role": "user", "content": "x"}]},
    )
    assert reply.status_code == 503
    assert "offline" in reply.json()["error"]
    assert reply.headers["retry-after"]


def test_death_mid_stream_ends_with_an_error_line(router, sim) -> None:
    httpx.post(sim.url + "/_sim/die", json={"count": 1, "after_chunks": 2})
    body = {"model": "llama3.2:3b", "messages": [{"role": "user", "content": "x"}]}
    with httpx.stream("POST", router.url + "/api/chat", json=body) as reply:
        assert reply.status_code == 200
        lines = [msgspec.json.decode(line) for line in reply.iter_lines() if line]
    assert "error" in lines[-1]
    assert not any(line.get("done") for line in lines)
    with pytest.raises(ollama.ResponseError):
        httpx.post(sim.url + "/_sim/die", json={"count": 1, "after_chunks": 2})
        list(
            ollama.Client(host=router.url).chat(
                model="llama3.2:3b", messages=body["messages"], stream=True
            )
        )
