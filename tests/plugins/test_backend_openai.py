"""Node ``type: openai``: herd in front of an OpenAI-compatible text server.

The emulator plays that server (``SimConfig(api="openai")``: ``/v1/models``,
``/v1/chat/completions``, ``/v1/completions``, no ``/api/*``), so every front API can be
checked against the tokens it really produced; a mixed fleet puts an Ollama emulator beside it.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import ollama
import openai
import pytest
from herd.testing import SimConfig, SimNode, expected_reply, tool_call_arguments
from herd.testing.router_runner import RouterHandle

from tests.core.threaded_app import serve_app

LLAMA, QWEN = "llama3.2:3b", "qwen2.5:7b"
REPLY = 24
WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


@pytest.fixture(scope="module")
def fleet() -> Iterator[tuple[RouterHandle, SimNode, SimNode]]:
    with (
        SimNode(SimConfig(name="vllm", port=0, api="openai")) as server,
        SimNode(SimConfig(name="box", port=0)) as box,
        RouterHandle(
            nodes=[
                {
                    "name": "vllm",
                    "url": server.url,
                    "type": "openai",
                    "options": {"api_key": "sk-node"},
                },
            ],
        ) as solo,
    ):
        yield solo, server, box


@pytest.fixture
def router(fleet: tuple[RouterHandle, SimNode, SimNode]) -> RouterHandle:
    return fleet[0]


def expected(prompt: str, count: int = REPLY, model: str = LLAMA) -> str:
    return "".join(expected_reply(model, prompt, count))


def test_inventory_counts_every_listed_model_as_loaded(router: RouterHandle) -> None:
    view = router.gateway.fleet.nodes["vllm"].view
    assert view.status == "online"
    assert LLAMA in view.loaded and QWEN in view.loaded
    assert view.loaded[LLAMA].context_length == 131_072  # vLLM's max_model_len
    tags = httpx.get(router.url + "/api/tags").json()["models"]
    assert LLAMA in {m["name"] for m in tags}
    models = httpx.get(router.url + "/v1/models").json()["data"]
    assert LLAMA in {m["id"] for m in models}


def test_ollama_chat_streamed_and_not(router: RouterHandle) -> None:
    client = ollama.Client(host=router.url)
    whole = client.chat(model=LLAMA, messages=[{"role": "user", "content": "hi"}], stream=False)
    assert whole.message.content == expected("hi")
    assert whole.done_reason == "stop" and whole.eval_count == REPLY
    assert whole.prompt_eval_count > 0
    parts = list(
        client.chat(model=LLAMA, messages=[{"role": "user", "content": "hi"}], stream=True)
    )
    assert "".join(p.message.content for p in parts) == expected("hi")
    assert parts[-1].done and parts[-1].eval_count == REPLY


def test_ollama_generate_goes_to_completions(router: RouterHandle) -> None:
    client = ollama.Client(host=router.url)
    whole = client.generate(model=LLAMA, prompt="Once", options={"num_predict": 5})
    assert whole.response == expected("Once", 5) and whole.done_reason == "length"
    parts = list(client.generate(model=LLAMA, prompt="Once", stream=True))
    assert "".join(p.response for p in parts) == expected("Once")


def test_generate_with_images_is_a_clear_400(router: RouterHandle) -> None:
    r = httpx.post(
        router.url + "/api/generate",
        json={"model": "llava:7b", "prompt": "what", "images": ["iVBORw0KGgo="]},
    )
    assert r.status_code == 400 and "/api/chat" in r.json()["error"]


def test_openai_chat_with_tools(router: RouterHandle) -> None:
    client = openai.OpenAI(base_url=router.url + "/v1", api_key="x", max_retries=0)
    tools: list[Any] = [{"type": "function", "function": {"name": "get_weather",
                                                          "parameters": WEATHER}}]  # fmt: skip
    messages: list[Any] = [{"role": "user", "content": "use get_weather for Rome"}]
    reply = client.chat.completions.create(model=LLAMA, messages=messages, tools=tools)
    (call,) = reply.choices[0].message.tool_calls
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == tool_call_arguments(WEATHER)
    assert reply.choices[0].finish_reason == "tool_calls"
    chunks = list(
        client.chat.completions.create(model=LLAMA, messages=messages, tools=tools, stream=True)
    )
    names = [
        tc.function.name for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or []
    ]
    assert names == ["get_weather"]


def test_anthropic_and_responses_reach_it(router: RouterHandle) -> None:
    claude = anthropic.Anthropic(base_url=router.url, api_key="x", max_retries=0)
    with claude.messages.stream(
        model=LLAMA, max_tokens=100, messages=[{"role": "user", "content": "stream"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == expected("stream") and final.usage.output_tokens == REPLY
    responses = openai.OpenAI(base_url=router.url + "/v1", api_key="x", max_retries=0).responses
    assert responses.create(model=LLAMA, input="resp").output_text == expected("resp")


def test_unknown_model_is_a_clean_404(router: RouterHandle) -> None:
    r = httpx.post(router.url + "/api/chat", json={"model": "nope:1b", "messages": []})
    assert r.status_code == 404


def test_server_errors_stay_in_the_clients_protocol(router: RouterHandle) -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": WEATHER}}]
    for stream in (False, True):
        body = {"model": "llava:7b", "stream": stream, "tools": tools,
                "messages": [{"role": "user", "content": "x"}]}  # fmt: skip
        r = httpx.post(router.url + "/v1/chat/completions", json=body)
        assert r.status_code == 400, r.text
        assert "does not support tools" in r.json()["error"]["message"]
        r = httpx.post(router.url + "/api/chat", json=body)
        assert r.status_code == 400 and "does not support tools" in r.json()["error"]


def test_a_mixed_fleet_is_one_inventory(make_sim: Any, make_router: Any) -> None:
    box = make_sim(name="box")
    server = make_sim(name="vllm", api="openai")
    router = make_router(
        nodes=[
            {"name": "vllm", "url": server.url, "type": "openai"},  # (listed first)
            {"name": "box", "url": box.url},
        ]
    )
    router.poll_now()
    tags = httpx.get(router.url + "/api/tags").json()["models"]
    names = [m["name"] for m in tags]
    assert names.count(LLAMA) == 1
    # the Ollama node's file details, not the OpenAI server's blanks (it lists no size)
    [llama] = [m for m in tags if m["name"] == LLAMA]
    assert llama["size"] > 0 and llama["digest"] and sorted(llama["nodes"]) == ["box", "vllm"]
    ids = [m["id"] for m in httpx.get(router.url + "/v1/models").json()["data"]]
    assert ids.count(LLAMA) == 1
    served = set()
    for index in range(8):
        r = httpx.post(
            router.url + "/api/chat",
            json={"model": LLAMA, "stream": False,
                  "messages": [{"role": "user", "content": f"q{index}"}]},
        )  # fmt: skip
        assert r.status_code == 200 and r.json()["message"]["content"] == expected(f"q{index}")
        served.add(r.headers["x-herd-node"])
    assert served <= {"box", "vllm"} and served


def test_an_unreachable_server_is_offline(make_router: Any) -> None:
    router = make_router(nodes=[{"name": "gone", "url": "http://127.0.0.1:9", "type": "openai"}])
    router.poll_now()
    assert router.gateway.fleet.nodes["gone"].view.status != "online"
    r = httpx.post(
        router.url + "/v1/chat/completions",
        json={"model": LLAMA, "messages": [{"role": "user", "content": "x"}]},
    )
    assert r.status_code in (404, 503) and r.json()["error"]["message"]


def test_embeddings_reach_an_openai_node(router: RouterHandle) -> None:
    from herd.testing import embedding_vector

    client = ollama.Client(host=router.url)
    reply = client.embed(model="all-minilm", input=["alpha", "beta"])
    assert len(reply.embeddings) == 2
    expected_vector = embedding_vector("all-minilm", "alpha", 384)
    assert reply.embeddings[0] == pytest.approx(expected_vector, abs=1e-6)
    vectors = openai.OpenAI(base_url=router.url + "/v1", api_key="x").embeddings.create(
        model="all-minilm", input="alpha"
    )
    assert vectors.data[0].embedding == pytest.approx(expected_vector, abs=1e-6)


def test_a_failure_before_the_first_byte_is_retried_elsewhere(
    make_sim: Any, make_router: Any
) -> None:
    first = make_sim(name="first", api="openai")
    second = make_sim(name="second", api="openai")
    router = make_router(
        nodes=[
            {"name": "first", "url": first.url, "type": "openai"},
            {"name": "second", "url": second.url, "type": "openai"},
        ]
    )
    router.poll_now()
    first.fail(count=10, status=500, error="boom")
    for stream in (True, False, True):
        r = httpx.post(
            router.url + "/api/chat",
            json={"model": LLAMA, "stream": stream,
                  "messages": [{"role": "user", "content": "retry"}]},
        )  # fmt: skip
        assert r.status_code == 200 and r.headers["x-herd-node"] == "second"
        text = "".join(
            json.loads(line)["message"]["content"] for line in r.text.splitlines() if line
        )
        assert text == expected("retry")


def test_a_stream_that_dies_ends_with_an_error_in_each_protocol(
    make_sim: Any, make_router: Any
) -> None:
    server = make_sim(name="flaky", api="openai")
    router = make_router(nodes=[{"name": "flaky", "url": server.url, "type": "openai"}])
    router.poll_now()
    server.die(count=1, after_chunks=3, error="GPU fell over")
    r = httpx.post(
        router.url + "/api/chat",
        json={"model": LLAMA, "messages": [{"role": "user", "content": "die"}]},
    )
    lines = [json.loads(line) for line in r.text.splitlines() if line]
    assert lines[-1]["error"] == "GPU fell over" and not any(x.get("done") for x in lines)
    server.die(count=1, after_chunks=3, error="GPU fell over")
    claude = anthropic.Anthropic(base_url=router.url, api_key="x", max_retries=0)
    kinds: list[str] = []
    events = claude.messages.create(
        model=LLAMA, max_tokens=50, stream=True, messages=[{"role": "user", "content": "die"}]
    )
    with pytest.raises(anthropic.APIStatusError) as broken:  # the SDK raises on an error event
        for event in events:
            kinds.append(event.type)
    assert broken.value.body["error"]["message"] == "GPU fell over"
    assert kinds[0] == "message_start" and "message_stop" not in kinds


def test_routing_prefers_the_server_where_the_model_is_hot(make_sim: Any, make_router: Any) -> None:
    box = make_sim(name="box", load_seconds_per_gb=0.2)  # the model is on disk, not loaded
    server = make_sim(name="vllm", api="openai")  # every listed model counts as loaded
    router = make_router(
        nodes=[
            {"name": "box", "url": box.url},
            {"name": "vllm", "url": server.url, "type": "openai"},
        ]
    )
    router.poll_now()
    r = httpx.post(
        router.url + "/api/chat",
        json={"model": QWEN, "stream": False, "messages": [{"role": "user", "content": "hot"}]},
    )
    assert r.status_code == 200 and r.headers["x-herd-node"] == "vllm"
    assert r.json()["message"]["content"] == expected("hot", model=QWEN)


class LlamaServerLike:
    """A few lines of aiohttp playing llama.cpp's ``llama-server`` inventory: ``/v1/models``
    and ``/props``, both behind an API key, on a free 127.0.0.1 port in a thread."""

    def __init__(self, key: str, n_ctx: int) -> None:
        from aiohttp import web

        self.seen_keys: list[str] = []

        async def models(request: web.Request) -> web.Response:
            self.seen_keys.append(request.headers.get("Authorization", ""))
            if request.headers.get("Authorization") != f"Bearer {key}":
                return web.json_response({"error": {"message": "Invalid API Key"}}, status=401)
            return web.json_response(
                {"object": "list", "data": [{"id": "qwen2.5:7b", "object": "model"}]}
            )

        async def props(request: web.Request) -> web.Response:
            return web.json_response({"default_generation_settings": {"n_ctx": n_ctx}})

        async def chat(request: web.Request) -> web.Response:
            # answers whole even when asked to stream, as some servers do
            return web.json_response(
                {"id": "c1", "object": "chat.completion", "created": 1, "model": "qwen2.5:7b",
                 "choices": [{"index": 0, "finish_reason": "stop",
                              "message": {"role": "assistant", "content": "whole anyway"}}],
                 "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}
            )  # fmt: skip

        self.app = web.Application()
        self.app.router.add_post("/v1/chat/completions", chat)
        self.app.router.add_get("/v1/models", models)
        self.app.router.add_get("/props", props)

    def __enter__(self) -> str:
        self.served = contextlib.ExitStack()
        return self.served.enter_context(serve_app(self.app))

    def __exit__(self, *exc: object) -> None:
        self.served.close()


def test_llama_cpp_props_give_the_context_and_the_key_is_sent(make_router: Any) -> None:
    fake = LlamaServerLike("sk-node", 8192)
    with fake as url:
        keyed = {"name": "llama", "url": url, "type": "openai", "options": {"api_key": "sk-node"}}
        router = make_router(nodes=[keyed])
        router.poll_now()
        view = router.gateway.fleet.nodes["llama"].view
        assert view.status == "online"
        assert view.loaded[QWEN].context_length == 8192
        assert set(fake.seen_keys) == {"Bearer sk-node"}
        for stream in (True, False):
            r = httpx.post(
                router.url + "/api/chat",
                json={"model": QWEN, "stream": stream,
                      "messages": [{"role": "user", "content": "hi"}]},
            )  # fmt: skip
            lines = [json.loads(line) for line in r.text.splitlines() if line]
            assert "".join(x["message"]["content"] for x in lines) == "whole anyway"
            assert lines[-1]["done"] and lines[-1]["eval_count"] == 2
        keyless = make_router(nodes=[{"name": "llama", "url": url, "type": "openai"}])
        keyless.poll_now()
        assert keyless.gateway.fleet.nodes["llama"].view.status != "online"


def test_images_reach_a_vision_model_on_the_server(router: RouterHandle) -> None:
    png = (
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9aw"
        "AAAABJRU5ErkJggg=="
    )
    client = ollama.Client(host=router.url)
    reply = client.chat(
        model="llava:7b",
        messages=[{"role": "user", "content": "describe", "images": [png]}],
        stream=False,
    )
    assert reply.message.content == expected("describe", model="llava:7b")
    r = httpx.post(
        router.url + "/api/chat",
        json={"model": LLAMA, "stream": False,
              "messages": [{"role": "user", "content": "x", "images": [png]}]},
    )  # fmt: skip
    assert r.status_code == 400 and "vision" in r.json()["error"]


def test_a_substitute_model_is_what_the_server_is_asked_for(router: RouterHandle) -> None:
    r = httpx.post(
        router.url + "/v1/chat/completions",
        json={"model": "absent:1b", "fallback_models": [QWEN],
              "messages": [{"role": "user", "content": "sub"}]},
    )  # fmt: skip
    assert r.status_code == 200, r.text
    assert r.headers["x-herd-model"] == QWEN
    assert r.json()["choices"][0]["message"]["content"] == expected("sub", model=QWEN)


def test_a_shaped_request_and_a_whole_answer_are_translated_once(
    make_sim: Any, make_router: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A body the router changed for the node (here a default keep_alive) reaches an
    OpenAI-compatible server as a dict translated once, never as Ollama JSON decoded
    again; its whole answer reaches an OpenAI client rendered from the backend's object."""
    from herd.interfaces import InferenceRequest, TypedReply

    encoded: list[str] = []
    encode_body, read_first = InferenceRequest.encoded_body, TypedReply.first.fget

    def counted_body(request: InferenceRequest) -> bytes:
        encoded.append("request")
        return encode_body(request)

    def counted_first(reply: TypedReply) -> bytes:
        encoded.append("answer")
        return read_first(reply)

    monkeypatch.setattr(InferenceRequest, "encoded_body", counted_body)
    monkeypatch.setattr(TypedReply, "first", property(counted_first))
    sim = make_sim(name="vllm", api="openai")
    router = make_router(
        nodes=[{"name": "vllm", "url": sim.url, "type": "openai"}],
        routing={"keep_alive": {"*": "10m"}},
    )
    router.poll_now()
    client = openai.OpenAI(base_url=router.url + "/v1", api_key="x", max_retries=0)
    reply = client.chat.completions.create(
        model=LLAMA, messages=[{"role": "user", "content": "once"}]
    )
    assert reply.choices[0].message.content
    assert reply.usage is not None and reply.usage.completion_tokens > 0
    assert encoded == []
    whole = ollama.Client(host=router.url).chat(
        model=LLAMA, messages=[{"role": "user", "content": "once"}], stream=False
    )
    assert whole.message.role == "assistant" and whole.message.content
    assert encoded == ["answer"]  # an Ollama client gets the Ollama JSON, made once


def test_load_and_unload_requests_are_answered_without_asking_the_server(
    fleet: tuple[RouterHandle, SimNode, SimNode],
) -> None:
    """An Ollama client's load (no prompt, no messages) or unload (the same with
    keep_alive 0): an OpenAI server has neither and would generate from nothing or refuse,
    so herd answers as Ollama does, the model being ready there."""
    router, server, _ = fleet
    before = server.stats()["requests"]
    client = ollama.Client(host=router.url)
    loaded = client.generate(model=LLAMA)
    assert loaded.done and loaded.done_reason == "load" and loaded.response == ""
    assert client.chat(model=LLAMA, messages=[]).done_reason == "load"
    assert client.generate(model=LLAMA, keep_alive=0).done_reason == "unload"
    assert client.chat(model=LLAMA, messages=[], keep_alive="0s").done_reason == "unload"
    after = server.stats()["requests"]
    asked = {path: n - before.get(path, 0) for path, n in after.items() if path != "/v1/models"}
    assert not any(asked.values()), asked
