"""/v1/completions, /v1/embeddings, /v1/models and errors, with the real ``openai`` package."""

from __future__ import annotations

import math
from collections.abc import Iterator

import httpx
import openai
import pytest
from herd.testing import EmulatedModel, SimConfig, SimNode, embedding_vector, expected_reply
from herd.testing.router_runner import RouterHandle

from tests.conftest import emulated

LLAMA, MINILM = "llama3.2:3b", "all-minilm:latest"


@pytest.fixture(scope="module")
def router() -> Iterator[RouterHandle]:
    models = [
        emulated(LLAMA),
        EmulatedModel(name=MINILM, size=45_000_000, capabilities=["embedding"]),
        emulated("team/tiny:1b", 0.5),
    ]
    with (
        SimNode(SimConfig(name="solo", port=0, models=models)) as sim,
        RouterHandle(
            nodes=[{"name": "solo", "url": sim.url}],
            routing={"aliases": {"gpt-4o-mini": LLAMA, "ghost": "missing:1b"}},
            limits={"max_body_bytes": 64 * 1024},
        ) as handle,
    ):
        yield handle


@pytest.fixture
def client(router: RouterHandle) -> openai.OpenAI:
    return openai.OpenAI(base_url=router.url + "/v1", api_key="unused", max_retries=0)


def test_legacy_completion_streamed_and_not(client: openai.OpenAI) -> None:
    expected = "".join(expected_reply(LLAMA, "Once upon", 24))
    whole = client.completions.create(model=LLAMA, prompt="Once upon")
    assert whole.object == "text_completion" and whole.choices[0].text == expected
    assert whole.choices[0].finish_reason == "stop" and whole.usage.completion_tokens == 24
    chunks = list(
        client.completions.create(
            model=LLAMA, prompt="Once upon", stream=True, stream_options={"include_usage": True}
        )
    )
    assert "".join(c.choices[0].text for c in chunks if c.choices) == expected
    assert chunks[-1].usage.total_tokens == whole.usage.total_tokens


def test_completion_echo_and_max_tokens(client: openai.OpenAI) -> None:
    reply = client.completions.create(model=LLAMA, prompt="Once", echo=True, max_tokens=2)
    assert reply.choices[0].text == "Once" + "".join(expected_reply(LLAMA, "Once", 2))
    assert reply.choices[0].finish_reason == "length"


def test_completion_logprobs_streamed_and_not(client: openai.OpenAI) -> None:
    tokens = expected_reply(LLAMA, "Once", 3)
    whole = client.completions.create(model=LLAMA, prompt="Once", max_tokens=3, logprobs=2)
    logprobs = whole.choices[0].logprobs
    assert logprobs is not None and logprobs.tokens == tokens
    assert len(logprobs.token_logprobs) == 3 and len(logprobs.top_logprobs) == 3
    assert logprobs.text_offset == [0, len(tokens[0]), len(tokens[0]) + len(tokens[1])]
    chunks = list(
        client.completions.create(model=LLAMA, prompt="Once", max_tokens=3, logprobs=2, stream=True)
    )
    streamed = [
        t
        for c in chunks
        if c.choices and c.choices[0].logprobs
        for t in c.choices[0].logprobs.tokens
    ]
    assert streamed == tokens


def test_embeddings_as_the_sdk_asks_base64_and_as_floats(client: openai.OpenAI) -> None:
    expected = embedding_vector(MINILM, "hello", 384)
    default = client.embeddings.create(model=MINILM, input="hello")  # the SDK asks for base64
    assert len(default.data) == 1 and default.data[0].index == 0
    assert all(
        math.isclose(a, b, abs_tol=1e-6)
        for a, b in zip(default.data[0].embedding, expected, strict=True)
    )
    floats = client.embeddings.create(
        model=MINILM, input=["hello", "world"], encoding_format="float"
    )
    assert [d.index for d in floats.data] == [0, 1]
    assert floats.data[0].embedding == pytest.approx(expected)
    assert floats.usage.prompt_tokens == floats.usage.total_tokens > 0
    short = client.embeddings.create(model=MINILM, input="hello", dimensions=8)
    assert len(short.data[0].embedding) == 8


def test_embeddings_refuse_token_ids_and_empty_input(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.embeddings.create(model=MINILM, input=[[1, 2, 3]])
    assert info.value.param == "input[0]"
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model=MINILM, input="")


def test_models_list_is_the_fleet_with_aliases(client: openai.OpenAI) -> None:
    models = {m.id: m for m in client.models.list()}
    assert {LLAMA, MINILM, "team/tiny:1b", "gpt-4o-mini"} == set(models)
    assert models[LLAMA].object == "model" and models[LLAMA].created > 0
    assert models[LLAMA].owned_by == "library" and models["team/tiny:1b"].owned_by == "team"
    assert "ghost" not in models  # its target is on no node


def test_models_retrieve_by_plain_namespaced_and_alias_name(client: openai.OpenAI) -> None:
    assert client.models.retrieve("llama3.2:3b").id == LLAMA
    assert client.models.retrieve("team/tiny:1b").owned_by == "team"
    assert client.models.retrieve("gpt-4o-mini").id == "gpt-4o-mini"
    with pytest.raises(openai.NotFoundError) as info:
        client.models.retrieve("nope:1b")
    assert info.value.code == "model_not_found"


def test_unknown_model_is_not_found_in_openai_shape(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == 404
    assert info.value.body == {
        "message": "model 'nope' not found",
        "type": "not_found_error",
        "param": "model",
        "code": "model_not_found",
    }


def test_bad_requests_are_400_naming_the_field(client: openai.OpenAI, router: RouterHandle) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=LLAMA, messages=[{"role": "user", "content": 5}])
    assert info.value.param == "messages[0].content"
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=LLAMA, messages=[])
    assert info.value.param == "messages"
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model=LLAMA, messages=[{"role": "user", "content": "x"}], n=2
        )
    assert info.value.param == "n" and "n must be 1" in info.value.message
    bad_json = httpx.post(router.url + "/v1/chat/completions", content=b"{nope")
    assert bad_json.status_code == 400
    assert bad_json.json()["error"]["type"] == "invalid_request_error"


def test_token_limits_below_openais_minimum_are_400_not_unlimited(client: openai.OpenAI) -> None:
    """Ollama reads num_predict -1 as 'no limit': a client's -1 is refused, not served long."""
    hi = [{"role": "user", "content": "x"}]
    for field in ("max_tokens", "max_completion_tokens"):
        with pytest.raises(openai.BadRequestError) as info:
            client.chat.completions.create(model=LLAMA, messages=hi, **{field: -1})
        assert info.value.param == field and "at least 1" in info.value.message
    with pytest.raises(openai.BadRequestError) as info:
        client.completions.create(model=LLAMA, prompt="x", max_tokens=-1)
    assert info.value.param == "max_tokens"
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(model=LLAMA, input="x", max_output_tokens=-1)
    assert info.value.param == "max_output_tokens"


def test_ollama_options_of_the_wrong_type_are_400_before_any_node(client: openai.OpenAI) -> None:
    """Through extra_body, as the OpenAI SDK passes Ollama's options: Ollama would answer
    a wrong type with a 500 (a 'failing node'); herd says whose mistake it is."""
    hi = [{"role": "user", "content": "x"}]
    bad = {"options": {"temperature": "hot"}}
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=LLAMA, messages=hi, extra_body=bad)
    assert info.value.param == "options.temperature"
    with pytest.raises(openai.BadRequestError) as info:
        client.embeddings.create(model=MINILM, input="x", extra_body={"options": {"stop": "x"}})
    assert info.value.param == "options.stop"
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(model=LLAMA, input="x", extra_body=bad)
    assert info.value.param == "options.temperature"
    fine = {"options": {"num_ctx": 4096.0, "mirostat": 2}}  # a JSON number; unknown keys pass
    reply = client.chat.completions.create(model=LLAMA, messages=hi, extra_body=fine)
    assert reply.choices[0].message.content


def test_body_over_the_limit_is_413(client: openai.OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(
            model=LLAMA, messages=[{"role": "user", "content": "x" * 100_000}]
        )
    assert info.value.status_code == 413


def test_unknown_v1_path_is_an_openai_404(router: RouterHandle) -> None:
    reply = httpx.post(router.url + "/v1/assistants", json={})
    assert reply.status_code == 404 and reply.json()["error"]["type"] == "not_found_error"


def test_node_death_mid_stream_raises_the_sdks_api_error(make_sim, make_router) -> None:
    sim = make_sim(name="dying", models=[emulated(LLAMA)])
    router = make_router(nodes=[sim])
    client = openai.OpenAI(base_url=router.url + "/v1", api_key="x", max_retries=0)
    for error in ("runner crashed", None):
        httpx.post(sim.url + "/_sim/die", json={"count": 1, "after_chunks": 3, "error": error})
        stream = client.chat.completions.create(
            model=LLAMA, messages=[{"role": "user", "content": "x"}], stream=True
        )
        received = []
        with pytest.raises(openai.APIError) as info:
            for chunk in stream:
                received.append(chunk)
        assert received, "the stream started before it broke"
        assert (error or "dying") in info.value.message


def test_offline_fleet_is_503_with_retry_after(make_sim, make_router) -> None:
    sim = make_sim(name="gone", models=[emulated(LLAMA)])
    router = make_router(nodes=[sim])
    sim.stop()
    router.poll_now()
    client = openai.OpenAI(base_url=router.url + "/v1", api_key="x", max_retries=0)
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model=LLAMA, messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == 503
    assert info.value.response.headers["retry-after"]
    assert info.value.body["type"] == "server_error"
