"""The openai-compat backend: embeddings translated both ways, polls, errors, options."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from aiohttp import web
from herd_services import BadInput, Engine, ServicesConfig, ServicesHandle
from herd_sim.images import IMAGE_MODEL
from herd_sim.transcribe import TRANSCRIBE_MODEL

from tests.conftest import emulated
from tests.core.threaded_app import serve_app
from tests.core.trace_collector import collector, wait_traces
from tests.core.workload_nodes import WORKLOADS_ON, tone_wav, workload_sim

__all__ = ["collector"]  # the fixture, used by name


class LengthEmbedder(Engine):
    capability = "embed"

    def __init__(self, name: str = "minilm") -> None:
        super().__init__(name)
        self.calls: list[list[str]] = []

    def embed(self, texts, dimensions, *, cancel):
        self.calls.append(list(texts))
        if "boom" in texts:
            raise BadInput("input 'boom' cannot be embedded")
        return [[float(len(t)), 1.0] for t in texts], 2 * len(texts)


class NamedTranscriber(Engine):
    capability = "transcribe"

    def transcribe(self, audio, language, prompt, temperature, *, cancel) -> dict[str, Any]:
        return {"text": f"heard by {self.name}", "duration": 0.5}


@pytest.fixture
def services():
    handles: list[ServicesHandle] = []

    def start(*engines: Engine, **config: Any) -> ServicesHandle:
        handle = ServicesHandle(engines, ServicesConfig(port=0, **config)).start()
        handles.append(handle)
        return handle

    yield start
    for handle in handles:
        handle.stop()


def test_ollama_embed_requests_are_translated_both_ways(services, make_router) -> None:
    embedder = LengthEmbedder()
    handle = services(embedder, NamedTranscriber("whisper-small"))
    router = make_router(nodes=[{"name": "box", "type": "openai-compat", "url": handle.url}])
    reply = httpx.post(router.url + "/api/embed", json={"model": "minilm", "input": ["ab", "c"]})
    assert reply.status_code == 200, reply.text
    assert reply.json() == {
        "model": "minilm",
        "embeddings": [[2.0, 1.0], [1.0, 1.0]],
        "prompt_eval_count": 4,
    }
    assert reply.headers["x-herd-node"] == "box"
    legacy = httpx.post(router.url + "/api/embeddings", json={"model": "minilm", "prompt": "xyz"})
    assert legacy.json() == {"embedding": [3.0, 1.0]}
    empty = httpx.post(router.url + "/api/embed", json={"model": "minilm", "input": []})
    assert empty.json() == {"model": "minilm", "embeddings": []}
    assert embedder.calls == [["ab", "c"], ["xyz"]]  # the empty request never left the router


def test_polls_learn_each_models_capability(services, make_router) -> None:
    handle = services(LengthEmbedder(), NamedTranscriber("whisper-small"))
    router = make_router(nodes=[{"name": "box", "type": "openai-compat", "url": handle.url}])
    view = router.gateway.fleet.nodes["box"].view
    assert set(view.models) == {"minilm:latest", "whisper-small:latest"}
    assert view.serves("embed", "minilm:latest")
    # a model listed as transcription-only is no embedding model
    wrong = httpx.post(router.url + "/api/embed", json={"model": "whisper-small", "input": "x"})
    assert wrong.status_code == 404


def test_service_models_are_kept_per_capability(services, make_sim, make_router) -> None:
    handle = services(LengthEmbedder(), NamedTranscriber("whisper-small"))
    sim = make_sim(name="ollama", models=[emulated("llama3.2:3b")])
    node = {
        "name": "box",
        "url": sim.url,
        "services": [{"type": "openai-compat", "url": handle.url}],
    }
    router = make_router(nodes=[node], workloads=WORKLOADS_ON)
    view = router.gateway.fleet.nodes["box"].view
    assert {cap: set(models) for cap, models in view.service_models.items()} == {
        "embed": {"minilm:latest"},
        "transcribe": {"whisper-small:latest"},
    }
    assert view.capabilities >= {"text", "embed", "transcribe"}
    reply = httpx.post(
        router.url + "/v1/audio/transcriptions",
        files={"file": ("a.wav", tone_wav(0.2))},
        data={"model": "whisper-small"},
    )
    assert reply.json()["text"] == "heard by whisper-small"
    assert reply.headers["x-herd-model"] == "whisper-small"


def test_a_nodes_4xx_reaches_the_client_and_is_not_retried(services, make_router) -> None:
    embedder, other = LengthEmbedder(), LengthEmbedder()
    first, second = services(embedder), services(other)
    router = make_router(
        nodes=[
            {"name": "one", "type": "openai-compat", "url": first.url},
            {"name": "two", "type": "openai-compat", "url": second.url},
        ]
    )
    reply = httpx.post(router.url + "/api/embed", json={"model": "minilm", "input": ["boom"]})
    assert reply.status_code == 400
    assert reply.json() == {"error": "input 'boom' cannot be embedded"}
    assert len(embedder.calls) + len(other.calls) == 1


def test_api_key_and_api_path_options(services, make_sim, make_router) -> None:
    handle = services(NamedTranscriber("whisper-small"), api_key="k1")
    sim = make_sim(name="ollama", models=[emulated("llama3.2:3b")])
    service = {
        "type": "openai-compat",
        "url": handle.url + "/v1",
        "options": {"api_key": "k1"},
        "capabilities": ["transcribe"],
    }
    router = make_router(
        nodes=[{"name": "box", "url": sim.url, "services": [service]}], workloads=WORKLOADS_ON
    )
    reply = httpx.post(
        router.url + "/api/transcribe",
        files={"audio": ("a.wav", tone_wav(0.2))},
        data={"model": "whisper-small"},
    )
    assert reply.status_code == 200, reply.text


def test_unknown_service_type_or_capability_is_a_clear_error() -> None:
    from herd._engine.config import load_settings
    from herd._engine.fleet.registry import Fleet
    from herd.interfaces import BackendContext
    from herd_plugins.backend_ollama import OllamaBackend
    from herd_plugins.backend_openai_compat import OpenAICompatBackend

    classes = {"ollama": OllamaBackend, "openai-compat": OpenAICompatBackend}
    url = "http://127.0.0.1:9"

    def fleet(service: dict[str, Any]) -> Fleet:
        nodes = [{"name": "a", "url": url, "services": [service]}]
        settings = load_settings(None, env={}, overrides={"nodes": nodes})
        return Fleet(settings, classes, BackendContext(http=None))

    with pytest.raises(ValueError, match="unknown type 'nope'"):
        fleet({"type": "nope", "url": url})
    with pytest.raises(ValueError, match="cannot serve text"):
        fleet({"type": "openai-compat", "url": url, "capabilities": ["text"]})
    with pytest.raises(ValueError, match="options"):
        fleet({"type": "openai-compat", "url": url, "options": {"colour": "red"}})


def test_emulated_node_serves_both_workloads_through_the_backend(make_sim, make_router) -> None:
    sim = workload_sim(make_sim, "studio")
    service = {"type": "openai-compat", "url": sim.url, "models": [TRANSCRIBE_MODEL.name]}
    router = make_router(
        nodes=[{"name": "studio", "url": sim.url, "services": [service]}], workloads=WORKLOADS_ON
    )
    view = router.gateway.fleet.nodes["studio"].view
    # the emulator has no /v1/models: the configured models stand, for every capability
    assert view.serves("transcribe", "sim-whisper:tiny") and view.serves(
        "image", "sim-whisper:tiny"
    )
    image = httpx.post(
        router.url + "/v1/images/generations", json={"model": IMAGE_MODEL.name, "prompt": "x"}
    )
    # Ollama lists it, but no service of the node offers it: no retry would help
    assert image.status_code == 400
    assert "not served for image generation" in image.json()["error"]["message"]
    assert "(it is on: studio)" in image.json()["error"]["message"]


class _CountingReads:
    """Counts how often the Ollama JSON of a TypedReply is encoded (read as ``first``)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from herd.interfaces import TypedReply

        self.count = 0
        encode = TypedReply.first.fget

        def counted(reply: TypedReply) -> bytes:
            self.count += 1
            return encode(reply)

        monkeypatch.setattr(TypedReply, "first", property(counted))


def test_openai_embeddings_are_translated_once_each_way(
    services, make_router, monkeypatch, collector
) -> None:
    """OpenAI client -> OpenAI-compatible server: the answer is decoded once into the
    canonical struct and rendered from it; no Ollama JSON is made in between, also when
    the inputs go out in batches. An Ollama client gets that JSON, encoded once."""
    import openai

    reads = _CountingReads(monkeypatch)
    embedder = LengthEmbedder()
    handle = services(embedder)
    router = make_router(
        nodes=[{"name": "box", "type": "openai-compat", "url": handle.url}],
        workloads={"embed_batch_size": 2},
        plugins={"load": [collector]},
    )
    client = openai.OpenAI(base_url=router.url + "/v1", api_key="x", max_retries=0)
    one = client.embeddings.create(model="minilm", input=["ab", "c"])
    assert [item.embedding for item in one.data] == [[2.0, 1.0], [1.0, 1.0]]
    assert one.usage.prompt_tokens == 4
    batched = client.embeddings.create(model="minilm", input=["a", "bb", "ccc", "dddd", "e"])
    assert [item.embedding[0] for item in batched.data] == [1.0, 2.0, 3.0, 4.0, 1.0]
    assert [item.index for item in batched.data] == [0, 1, 2, 3, 4]
    assert batched.usage.prompt_tokens == 10
    assert embedder.calls == [["ab", "c"], ["a", "bb"], ["ccc", "dddd"], ["e"]]
    assert reads.count == 0  # rendered from the struct: never encoded as Ollama JSON
    ollama_reply = httpx.post(router.url + "/api/embed", json={"model": "minilm", "input": "xyz"})
    assert ollama_reply.json()["embeddings"] == [[3.0, 1.0]]
    assert reads.count == 1
    traces = wait_traces(5)  # one, three batches, one
    assert [t.status for t in traces] == ["completed"] * 5
    assert sum(t.prompt_tokens for t in traces) == 4 + (4 + 4 + 2) + 2


class _TokenVectorServer:
    """An OpenAI-compatible server as llama-cpp-python is with a chat model and
    ``--embedding true``: ``/v1/embeddings`` answers one vector per token of each input
    (a model without pooling); chat works."""

    @staticmethod
    async def _models(_: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "chatty:1b"}]})

    @staticmethod
    async def _embeddings(request: web.Request) -> web.Response:
        inputs = (await request.json())["input"]
        inputs = [inputs] if isinstance(inputs, str) else inputs
        data = [
            {"object": "embedding", "index": i, "embedding": [[0.5, 0.25]] * len(text.split())}
            for i, text in enumerate(inputs)
        ]
        return web.json_response({"object": "list", "data": data, "model": "chatty:1b"})

    @staticmethod
    async def _chat(_: web.Request) -> web.Response:
        message = {"role": "assistant", "content": "still here"}
        choice = {"index": 0, "message": message, "finish_reason": "stop"}
        usage = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
        reply = {"id": "c1", "object": "chat.completion", "created": 1, "model": "chatty:1b"}
        return web.json_response({**reply, "choices": [choice], "usage": usage})

    @classmethod
    def app(cls) -> web.Application:
        app = web.Application()
        app.router.add_get("/v1/models", cls._models)
        app.router.add_post("/v1/embeddings", cls._embeddings)
        app.router.add_post("/v1/chat/completions", cls._chat)
        return app


def test_embeddings_a_node_cannot_give_are_a_clear_502_and_leave_it_online(make_router) -> None:
    """A vector per token instead of one per input is the node's answer herd cannot use:
    a 502 that says why, each time; but the node answered, so it is no sign that it is
    down: past ``fleet.failures_to_offline`` such answers it is still online and chats."""
    with serve_app(_TokenVectorServer.app()) as url:
        router = make_router(nodes=[{"name": "llama", "type": "openai", "url": url}])
        for _ in range(4):  # one more than fleet.failures_to_offline
            reply = httpx.post(
                router.url + "/v1/embeddings", json={"model": "chatty:1b", "input": "two words"}
            )
            assert reply.status_code == 502, reply.text
            assert "a vector per token" in reply.json()["error"]["message"]
        assert router.gateway.fleet.nodes["llama"].view.status == "online"
        chat = httpx.post(
            router.url + "/v1/chat/completions",
            json={"model": "chatty:1b", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert chat.status_code == 200 and chat.json()["choices"][0]["message"]["content"]
