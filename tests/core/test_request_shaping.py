"""Context protection and keep-alive defaults: what each node receives, byte for byte."""

from __future__ import annotations

import msgspec
import pytest
from herd._engine.intake import describe_request
from herd._engine.shaping import BodyShaper
from herd.protocol.ollama import ChatRequest
from herd.settings import RoutingSettings

from tests.plugins.node_factory import MODEL, make_node, make_request


def body(**options) -> bytes:
    data = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
    if options:
        data["options"] = options
    return msgspec.json.encode(data)


def shaped(mode: str, num_ctx: int | None, loaded_ctx: int | None, **routing):
    shaper = BodyShaper(RoutingSettings(context_protection=mode, **routing))
    original = body(num_ctx=num_ctx) if num_ctx else body()
    request = make_request(num_ctx=num_ctx, raw_body=original)
    view = make_node(loaded={MODEL: loaded_ctx} if loaded_ctx else {})
    shaper.shape(request, view, original)
    sent = msgspec.json.decode(request.encoded_body())
    return sent.get("options", {}).get("num_ctx"), request.notes, request.encoded_body() is original


@pytest.mark.parametrize(
    ("mode", "num_ctx", "loaded", "sent_ctx", "untouched", "note"),
    [
        ("pin", None, 8192, 8192, False, ""),  # pinned silently: no reload
        ("pin", 2048, 8192, 8192, False, "num_ctx 2048 pinned to the loaded 8192"),
        ("pin", 8192, 8192, 8192, True, ""),
        ("pin", 16384, 8192, 16384, True, "num_ctx 16384 > loaded 8192 on a: the model reloads"),
        ("pin", None, None, None, True, ""),  # not loaded: the node decides
        ("strip", 2048, 8192, None, False, "num_ctx 2048 removed (loaded 8192 on a)"),
        ("strip", None, 8192, None, True, ""),
        ("warn", 2048, 8192, 2048, True, "num_ctx 2048 differs from loaded 8192 on a"),
        ("passthrough", 2048, 8192, 2048, True, ""),
    ],
)
def test_context_protection_modes(mode, num_ctx, loaded, sent_ctx, untouched, note) -> None:
    sent, notes, same_bytes = shaped(mode, num_ctx, loaded)
    assert sent == sent_ctx
    assert same_bytes == untouched  # unchanged bodies go as the client's own bytes
    assert (note in notes[0]) if note else not notes


def test_keep_alive_default_applies_only_when_the_client_sends_none() -> None:
    routing = {"keep_alive": {"qwen2.5:7b": "30m", "*": 60}, "context_protection": "passthrough"}
    shaper = BodyShaper(RoutingSettings(**routing))
    original = body()
    request = make_request(raw_body=original)
    shaper.shape(request, make_node(), original)
    assert msgspec.json.decode(request.encoded_body())["keep_alive"] == "30m"
    own = msgspec.json.encode({"model": MODEL, "keep_alive": 0})
    request = make_request(raw_body=own)
    shaper.shape(request, make_node(), own)
    assert request.encoded_body() is own
    other = make_request("llama3.2:3b", raw_body=original)
    shaper.shape(other, make_node(), original)
    assert msgspec.json.decode(other.encoded_body())["keep_alive"] == 60


def test_a_substituted_model_is_named_in_the_body() -> None:
    shaper = BodyShaper(RoutingSettings(context_protection="passthrough"))
    original = body()
    request = make_request("llama3.1:8b", raw_body=original)
    shaper.shape(request, make_node(), original, served_name="llama3.1:8b")
    assert msgspec.json.decode(request.encoded_body())["model"] == "llama3.1:8b"


def test_hints_estimate_tokens_images_and_the_conversation() -> None:
    first = ChatRequest(
        model=MODEL,
        messages=[
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "x" * 400, "images": ["aGk="]},
        ],
        options={"num_predict": 64},
        fallback_models=["Llama3.1:8B"],
    )
    first = msgspec.convert(msgspec.to_builtins(first), ChatRequest)
    request = make_request()
    describe_request(request, first, {"x-herd-no-fallback": "1"})
    assert request.prompt_tokens == (8 + 400) // 4 + 576
    assert request.images == 1 and request.num_predict == 64
    assert request.fallback_models == ["llama3.1:8b"] and not request.allow_fallback
    assert request.session.startswith("chat:") and not request.follow_up
    later = make_request()
    describe_request(
        later,
        {
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "x" * 400},
                {"role": "assistant", "content": "ok"},
                {"role": "user", "content": "more"},
            ]
        },
    )
    assert later.session == request.session and later.follow_up
