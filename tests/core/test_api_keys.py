"""Optional client API keys: 401 in the client's protocol, the key's name on tags and traces."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import httpx
import ollama
import openai
import pytest
from herd._engine.auth import ClientKeys
from herd.testing import SimConfig, SimNode
from herd.testing.router_runner import RouterHandle

from tests.conftest import emulated

LLAMA = "llama3.2:3b"
CI_KEY, ALICE_KEY = "ci-secret-0001", "alice-secret-0002"


@pytest.fixture(scope="module")
def router() -> Iterator[RouterHandle]:
    keys = [{"name": "ci", "key": CI_KEY}, {"name": "alice", "key": ALICE_KEY}]
    with (
        SimNode(SimConfig(name="solo", port=0, models=[emulated(LLAMA)], reply_tokens=4)) as sim,
        RouterHandle(nodes=[{"name": "solo", "url": sim.url}], auth={"api_keys": keys}) as handle,
    ):
        yield handle


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_openai_client_needs_a_configured_key(router: RouterHandle) -> None:
    wrong = openai.OpenAI(base_url=router.url + "/v1", api_key="not-a-key", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as info:
        wrong.chat.completions.create(model=LLAMA, messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == 401
    assert info.value.body["type"] == "invalid_request_error"
    assert info.value.code == "invalid_api_key"
    with pytest.raises(openai.AuthenticationError):
        wrong.models.list()
    right = openai.OpenAI(base_url=router.url + "/v1", api_key=CI_KEY, max_retries=0)
    reply = right.chat.completions.create(model=LLAMA, messages=[{"role": "user", "content": "x"}])
    assert reply.choices[0].finish_reason == "stop"
    assert LLAMA in {m.id for m in right.models.list()}


def test_ollama_client_gets_401_in_ollama_shape(router: RouterHandle) -> None:
    with pytest.raises(ollama.ResponseError) as info:
        ollama.Client(host=router.url).chat(
            model=LLAMA, messages=[{"role": "user", "content": "x"}]
        )
    assert info.value.status_code == 401
    reply = httpx.get(router.url + "/api/tags")
    assert reply.status_code == 401 and isinstance(reply.json()["error"], str)
    client = ollama.Client(host=router.url, headers=bearer(ALICE_KEY))
    assert client.chat(model=LLAMA, messages=[{"role": "user", "content": "x"}])["done"]
    assert client.list()["models"]


@pytest.mark.parametrize(
    "method,path",
    [
        ("GET", "/api/tags"),
        ("GET", "/api/ps"),
        ("GET", "/api/version"),
        ("POST", "/api/show"),
        ("POST", "/api/generate"),
        ("POST", "/api/embed"),
        ("GET", "/v1/models"),
        ("POST", "/v1/completions"),
        ("POST", "/v1/embeddings"),
        ("GET", "/fleet/status"),
    ],
)
def test_every_inference_and_admin_route_is_protected(
    router: RouterHandle, method: str, path: str
) -> None:
    for headers in ({}, bearer("wrong-key-123"), {"Authorization": f"Basic {CI_KEY}"}):
        reply = httpx.request(method, router.url + path, json={}, headers=headers)
        assert reply.status_code == 401, (path, headers)


def test_liveness_and_the_agents_heartbeat_stay_open(router: RouterHandle) -> None:
    assert httpx.get(router.url + "/").status_code == 200
    assert httpx.get(router.url + "/healthz").status_code == 200
    beat = httpx.post(router.url + "/fleet/heartbeat", content=b"{}")
    assert "API key" not in beat.text  # the node token guards it, not client keys


def test_the_keys_name_tags_the_request_and_its_trace(router: RouterHandle) -> None:
    seen: list[Any] = []
    gateway = router.gateway
    original = gateway.finish
    gateway.finish = lambda trace: (seen.append(trace), original(trace))
    try:
        client = openai.OpenAI(
            base_url=router.url + "/v1",
            api_key=ALICE_KEY,
            default_headers={"X-Herd-Tags": "nightly"},
        )
        client.completions.create(model=LLAMA, prompt="x")
        deadline = time.monotonic() + 5
        while not seen and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        del gateway.finish
    assert seen[0].api_key == "alice" and seen[0].tags == ["nightly", "key:alice"]


def test_keys_never_reach_the_logs(router: RouterHandle, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    httpx.get(router.url + "/v1/models", headers=bearer("guessed-key-0003"))
    httpx.get(router.url + "/v1/models", headers=bearer(CI_KEY))
    assert CI_KEY not in caplog.text and "guessed-key-0003" not in caplog.text


def test_key_lookup() -> None:
    keys = ClientKeys([("a", "first-key-1"), ("b", "second-key-2")])
    assert keys.name_for("second-key-2") == "b"
    assert keys.name_for("second-key-") is None and keys.name_for("") is None


def test_the_admin_key_also_reads_what_clients_may(make_sim, make_router) -> None:
    sim = make_sim(name="solo", models=[emulated(LLAMA)])
    router = make_router(
        nodes=[sim], auth={"api_keys": [{"name": "ci", "key": CI_KEY}], "admin_key": "adm-0003"}
    )
    assert httpx.get(router.url + "/api/tags").status_code == 401
    assert httpx.get(router.url + "/api/tags", headers=bearer("adm-0003")).status_code == 200
    overview = httpx.get(router.url + "/dashboard/api/overview", headers=bearer("adm-0003"))
    assert overview.status_code == 200
