"""Property: an OpenAI chat request -> herd's canonical (Ollama) form -> OpenAI keeps its fields.

Every field the contract (openai-api.md section 9.1/9.2) maps to Ollama survives the round
trip: model, messages (roles, text, images, assistant tool calls with ids and arguments,
tool results, reasoning), stream, sampling options, stop, seed, penalties, token limit,
response_format, tools, reasoning_effort, logprobs, Ollama's own knobs and the ``user`` tag.
Where the contract itself folds two spellings into one (``max_completion_tokens`` and
``max_tokens``, a lone ``stop`` string, absent ``temperature``/``top_p`` sent as 1.0,
``developer`` as ``system``), the expectation is folded the same way.
"""

from __future__ import annotations

from typing import Any

import msgspec
from herd._engine.intake import collect_tags
from herd.protocol.openai import (
    ChatCompletionRequest,
    ChatMessage,
    FunctionCall,
    FunctionDefinition,
    ImagePart,
    ImageUrl,
    JsonSchemaFormat,
    ResponseFormat,
    TextPart,
    Tool,
    ToolCall,
)
from herd.protocol.openai_requests import chat_to_ollama
from herd.protocol.openai_upstream import chat_request_from_ollama
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,11}", fullmatch=True)
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=30)
FLOATS = st.floats(min_value=-2, max_value=2, allow_nan=False).map(lambda x: round(x, 3))
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-1000, 1000) | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(NAMES, inner, max_size=3),
    max_leaves=6,
)
ARGUMENTS = st.dictionaries(NAMES, JSON_VALUES, max_size=3)
IMAGE = st.binary(min_size=1, max_size=12).map(
    lambda raw: "data:image/png;base64,iVBOR" + msgspec.json.encode(raw).decode()[1:-1]
)
CALL_IDS = st.from_regex(r"call_[a-z0-9]{8}", fullmatch=True)


@st.composite
def user_message(draw: st.DrawFn) -> ChatMessage:
    text = draw(TEXT)
    images = draw(st.lists(IMAGE, max_size=2))
    if not images:
        return ChatMessage(role="user", content=text)
    return ChatMessage(
        role="user", content=[TextPart(text), *(ImagePart(ImageUrl(i)) for i in images)]
    )


@st.composite
def tool_exchange(draw: st.DrawFn) -> list[ChatMessage]:
    """An assistant turn calling tools, then one tool result per call."""
    calls = [
        ToolCall(
            id=draw(CALL_IDS),
            function=FunctionCall(draw(NAMES), msgspec.json.encode(draw(ARGUMENTS)).decode()),
        )
        for _ in range(draw(st.integers(1, 2)))
    ]
    assistant = ChatMessage(role="assistant", content=None, tool_calls=calls)
    if draw(st.booleans()):
        assistant.reasoning_content = draw(TEXT)
    results = [ChatMessage(role="tool", content=draw(TEXT), tool_call_id=call.id) for call in calls]
    return [assistant, *results]


@st.composite
def conversation(draw: st.DrawFn) -> list[ChatMessage]:
    messages: list[ChatMessage] = []
    if draw(st.booleans()):
        messages.append(
            ChatMessage(role=draw(st.sampled_from(["system", "developer"])), content=draw(TEXT))
        )
    for _ in range(draw(st.integers(1, 3))):
        messages.append(draw(user_message()))
        turn = draw(st.sampled_from(["none", "text", "tools"]))
        if turn == "text":
            messages.append(ChatMessage(role="assistant", content=draw(TEXT)))
        elif turn == "tools":
            messages.extend(draw(tool_exchange()))
    return messages


def tools() -> st.SearchStrategy[list[Tool] | None]:
    tool = st.builds(
        lambda name, description, parameters, strict: Tool(
            type="function", function=FunctionDefinition(name, description, parameters, strict)
        ),
        NAMES,
        st.none() | TEXT,
        st.none() | st.dictionaries(NAMES, JSON_VALUES, max_size=3),
        st.none() | st.booleans(),
    )
    return st.none() | st.lists(tool, min_size=1, max_size=3, unique_by=lambda t: t.function.name)


def response_formats() -> st.SearchStrategy[ResponseFormat | None]:
    return st.one_of(
        st.none(),
        st.just(ResponseFormat(type="json_object")),
        st.builds(
            lambda schema: ResponseFormat(
                type="json_schema", json_schema=JsonSchemaFormat(name="response", schema=schema)
            ),
            st.dictionaries(NAMES, JSON_VALUES, min_size=1, max_size=3),
        ),
    )


REQUESTS = st.builds(
    ChatCompletionRequest,
    model=st.from_regex(r"[a-z][a-z0-9.\-]{0,10}(:[a-z0-9]{1,4})?", fullmatch=True),
    messages=conversation(),
    stream=st.booleans(),
    max_completion_tokens=st.none() | st.integers(1, 4096),
    max_tokens=st.none() | st.integers(1, 4096),
    temperature=st.none() | FLOATS,
    top_p=st.none() | FLOATS,
    stop=st.none() | TEXT | st.lists(TEXT, max_size=4),
    seed=st.none() | st.integers(0, 2**31),
    frequency_penalty=st.none() | FLOATS,
    presence_penalty=st.none() | FLOATS,
    logprobs=st.none() | st.just(True),
    top_logprobs=st.none() | st.integers(0, 20),
    tools=tools(),
    response_format=response_formats(),
    reasoning_effort=st.none() | st.sampled_from(["none", "low", "medium", "high", "max"]),
    num_ctx=st.none() | st.integers(512, 131072),
    top_k=st.none() | st.integers(1, 100),
    keep_alive=st.none() | st.sampled_from(["5m", 0.0, -1.0]),
    user=st.none() | NAMES,
)


def expected(request: ChatCompletionRequest) -> dict[str, Any]:
    """The request as it must come back: the contract's own foldings applied."""
    folded = msgspec.structs.replace(
        request,
        messages=[
            msgspec.structs.replace(m, role="system") if m.role == "developer" else m
            for m in request.messages or []
        ],
        max_tokens=request.max_completion_tokens or request.max_tokens,
        max_completion_tokens=None,
        temperature=1.0 if request.temperature is None else request.temperature,
        top_p=1.0 if request.top_p is None else request.top_p,
        stop=[request.stop] if isinstance(request.stop, str) else request.stop,
        top_logprobs=request.top_logprobs if request.logprobs else None,
        tools=[
            Tool(type="function", function=msgspec.structs.replace(t.function, strict=None))
            for t in request.tools or []
        ]
        or None,
    )
    return _comparable(folded)


def _comparable(request: ChatCompletionRequest) -> dict[str, Any]:
    data = msgspec.to_builtins(request)
    data.pop("stream_options", None)  # a property of the client's stream, kept by the route
    for message in data.get("messages", []):
        if message["role"] == "tool":
            message.pop("name", None)  # added back from the call it answers
    return data


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(REQUESTS)
def test_openai_to_canonical_to_openai_keeps_every_contract_field(
    request: ChatCompletionRequest,
) -> None:
    canonical = chat_to_ollama(request, request.model)
    tags = collect_tags(None, user=request.user)
    back = chat_request_from_ollama(msgspec.json.decode(msgspec.json.encode(canonical)))
    users = [t.removeprefix("user:") for t in tags if t.startswith("user:")]
    back.user = users[0] if users else None
    assert _comparable(back) == expected(request)


@settings(max_examples=60, deadline=None)
@given(REQUESTS)
def test_tool_results_get_the_name_of_the_call_they_answer(request: ChatCompletionRequest) -> None:
    canonical = chat_to_ollama(request, request.model)
    names: dict[str, str] = {}  # the latest call with each id, as a client reuses ids
    for message in canonical["messages"]:
        for call in message.get("tool_calls", []):
            names[call["id"]] = call["function"]["name"]
        if message["role"] == "tool":
            assert message["tool_name"] == names[message["tool_call_id"]]
        assert isinstance(message["content"], str)
        for call in message.get("tool_calls", []):
            assert isinstance(call["function"]["arguments"], dict)
