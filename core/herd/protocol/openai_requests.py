"""OpenAI requests to Ollama request bodies: the canonical form herd routes (pure).

The rules follow ``openai-api.md`` section 9: ``max_completion_tokens`` (else
``max_tokens``) becomes ``options.num_predict``; absent ``temperature``/``top_p`` are sent
as 1.0 (what Ollama's own ``/v1`` layer sends); content parts become one Ollama message
with ``images``; tool-call arguments are parsed from JSON strings into objects;
``response_format`` becomes ``format``; ``reasoning_effort`` becomes ``think``. Ollama's
own knobs (``options``, ``keep_alive``, ``think``, ``num_ctx``, ``top_k``, ``min_p``,
``repeat_penalty``) are taken from extra top-level fields (the SDK's ``extra_body``).

Example:
    >>> from herd.protocol.openai import ChatCompletionRequest, ChatMessage
    >>> req = ChatCompletionRequest(model="m", messages=[ChatMessage("user", "hi")],
    ...                             max_tokens=5)
    >>> chat_to_ollama(req, "m")["options"]["num_predict"]
    5
"""

from __future__ import annotations

from typing import Any

import msgspec

from herd.protocol.openai import (
    AudioPart,
    ChatCompletionRequest,
    ChatMessage,
    CompletionRequest,
    ContentPart,
    FilePart,
    ImagePart,
    OpenAIRequestError,
    RefusalPart,
    ResponseFormat,
    TextPart,
    Tool,
    checked_options,
)
from herd.protocol.openai_embedding_requests import embedding_format, embedding_to_ollama

__all__ = [
    "THINK_LEVELS",
    "chat_to_ollama",
    "completion_to_ollama",
    "embedding_format",
    "embedding_to_ollama",
    "messages_to_ollama",
    "think_value",
]

THINK_LEVELS: dict[str, bool | str] = {
    "none": False,
    "minimal": "low",
    "low": "low",
    "medium": "medium",
    "high": "high",
    "max": "max",
    "xhigh": "max",
    "ultra": "max",
}
"""``reasoning_effort`` to Ollama ``think``, as Ollama's own ``/v1`` layer maps it."""

_decode_arguments = msgspec.json.Decoder(dict[str, Any]).decode


def chat_to_ollama(request: ChatCompletionRequest, model: str) -> dict[str, Any]:
    """The Ollama ``/api/chat`` body for an OpenAI chat request.

    Args:
        request: The decoded OpenAI request.
        model: The model name to send to the node (after aliases).

    Raises:
        OpenAIRequestError: empty ``messages``, ``n`` > 1, an image URL that is not a
            data URL, bad tool-call arguments, an unknown ``response_format`` or effort.
    """
    if not request.messages:
        raise OpenAIRequestError("messages must be a non-empty array", "messages")
    _single_choice(request.n, "n")
    body: dict[str, Any] = {
        "model": model,
        "messages": messages_to_ollama(request.messages),
        "stream": bool(request.stream),
    }
    tools = _tools(request.tools, request.tool_choice)
    if tools:
        body["tools"] = tools
    fmt = _format(request.response_format)
    if fmt is not None:
        body["format"] = fmt
    effort = request.reasoning_effort
    if effort is None and request.reasoning is not None:
        effort = request.reasoning.effort
    think = think_value(effort, request.think)
    if think is not None:
        body["think"] = think
    if request.logprobs:
        body["logprobs"] = True
        if request.top_logprobs is not None:
            body["top_logprobs"] = request.top_logprobs
    limit = request.max_completion_tokens
    if limit is None:
        limit = request.max_tokens
    body["options"] = _options(request, limit)
    if request.keep_alive is not None:
        body["keep_alive"] = request.keep_alive
    return body


def completion_to_ollama(request: CompletionRequest, model: str) -> dict[str, Any]:
    """The Ollama ``/api/generate`` body for a legacy completion request.

    ``max_tokens`` is not defaulted to OpenAI's 16 (Ollama's ``/v1`` layer does not either).
    """
    _single_choice(request.n, "n")
    _single_choice(request.best_of, "best_of")
    body: dict[str, Any] = {
        "model": model,
        "prompt": _prompt(request.prompt),
        "stream": bool(request.stream),
    }
    if request.suffix:
        body["suffix"] = request.suffix
    think = think_value(None, request.think)
    if think is not None:
        body["think"] = think
    if request.logprobs:
        body["logprobs"] = True
        body["top_logprobs"] = request.logprobs
    body["options"] = _options(request, request.max_tokens)
    if request.keep_alive is not None:
        body["keep_alive"] = request.keep_alive
    return body


def think_value(effort: str | None, think: bool | str | None) -> bool | str | None:
    """Ollama ``think`` from ``reasoning_effort``; an explicit ``think`` wins."""
    if think is not None:
        return think
    if effort is None:
        return None
    value = THINK_LEVELS.get(effort.lower())
    if value is None:
        known = ", ".join(THINK_LEVELS)
        raise OpenAIRequestError(
            f"invalid reasoning_effort {effort!r} (known: {known})", "reasoning_effort"
        )
    return value


def messages_to_ollama(messages: list[ChatMessage]) -> list[dict[str, Any]]:
    """OpenAI messages to Ollama messages (one Ollama message per OpenAI message)."""
    call_names: dict[str, str] = {}
    out: list[dict[str, Any]] = []
    for index, message in enumerate(messages):
        role = message.role.lower()
        if role == "developer":
            role = "system"
        text, images = _content(message.content, index)
        if role == "function":
            entry: dict[str, Any] = {"role": "tool", "content": text}
            if message.name:
                entry["tool_name"] = message.name
            out.append(entry)
            continue
        entry = {"role": role, "content": text}
        if images:
            entry["images"] = images
        if role == "assistant":
            thinking = message.reasoning_content or message.reasoning
            if thinking:
                entry["thinking"] = thinking
            if message.tool_calls:
                entry["tool_calls"] = _tool_calls(message, index, call_names)
        elif role == "tool":
            call_id = message.tool_call_id or ""
            if call_id:
                entry["tool_call_id"] = call_id
            name = call_names.get(call_id) or message.name
            if name:
                entry["tool_name"] = name
        out.append(entry)
    return out


def _tool_calls(
    message: ChatMessage, index: int, call_names: dict[str, str]
) -> list[dict[str, Any]]:
    calls = []
    for position, call in enumerate(message.tool_calls or []):
        function = call.function
        arguments = function.arguments
        if isinstance(arguments, str):
            param = f"messages[{index}].tool_calls[{position}].function.arguments"
            try:
                arguments = _decode_arguments(arguments) if arguments.strip() else {}
            except (msgspec.DecodeError, msgspec.ValidationError):
                raise OpenAIRequestError("invalid tool call arguments", param) from None
        converted: dict[str, Any] = {
            "function": {"index": position, "name": function.name, "arguments": arguments}
        }
        if call.id:
            converted["id"] = call.id
            call_names[call.id] = function.name
        calls.append(converted)
    return calls


def _content(content: str | list[ContentPart] | None, index: int) -> tuple[str, list[str]]:
    """Text (parts joined by newlines) and the base64 images of one message's content."""
    if content is None:
        return "", []
    if isinstance(content, str):
        return content, []
    texts: list[str] = []
    images: list[str] = []
    for position, part in enumerate(content):
        param = f"messages[{index}].content[{position}]"
        if isinstance(part, TextPart):
            texts.append(part.text)
        elif isinstance(part, ImagePart):
            url = part.image_url if isinstance(part.image_url, str) else part.image_url.url
            images.append(_image_data(url, param + ".image_url"))
        elif isinstance(part, AudioPart):
            images.append(part.input_audio.data)
        elif isinstance(part, RefusalPart):
            texts.append(part.refusal)
        elif isinstance(part, FilePart):
            raise OpenAIRequestError("file content parts are not supported by herd", param)
    return "\n".join(texts), images


def _image_data(url: str, param: str) -> str:
    """The base64 payload of a ``data:`` URL (or a bare base64 string)."""
    if url.startswith("data:"):
        head, sep, data = url.partition(",")
        if not sep or not head.endswith(";base64"):
            raise OpenAIRequestError("invalid image input: expected a base64 data URL", param)
        return data
    if url.startswith(("http://", "https://")):
        raise OpenAIRequestError(
            "image URLs are not supported, please use base64 encoded data instead", param
        )
    return url


def _tools(tools: list[Tool] | None, choice: str | dict[str, Any] | None) -> list[dict[str, Any]]:
    """Function tools in Ollama's shape, narrowed by ``tool_choice`` where Ollama can follow."""
    if not tools or choice == "none":
        return []
    wanted = _chosen_names(choice)
    out = []
    for tool in tools:
        function = tool.function
        if tool.type != "function" or function is None:
            continue
        if wanted and function.name not in wanted:
            continue
        definition: dict[str, Any] = {"name": function.name}
        if function.description is not None:
            definition["description"] = function.description
        if function.parameters is not None:
            definition["parameters"] = function.parameters
        out.append({"type": "function", "function": definition})
    if wanted and not out:  # a choice naming no offered tool: never fail because of it
        return _tools(tools, None)
    return out


def _chosen_names(choice: str | dict[str, Any] | None) -> set[str]:
    if not isinstance(choice, dict):
        return set()
    function = choice.get("function")
    if isinstance(function, dict) and isinstance(function.get("name"), str):
        return {function["name"]}
    allowed = choice.get("allowed_tools")
    if isinstance(allowed, dict) and isinstance(allowed.get("tools"), list):
        names = set()
        for item in allowed["tools"]:
            inner = item.get("function") if isinstance(item, dict) else None
            if isinstance(inner, dict) and isinstance(inner.get("name"), str):
                names.add(inner["name"])
        return names
    return set()


def _format(response_format: ResponseFormat | None) -> Any:
    if response_format is None or response_format.type == "text":
        return None
    if response_format.type == "json_object":
        return "json"
    if response_format.type == "json_schema":
        schema = response_format.json_schema.schema if response_format.json_schema else None
        if schema is None:
            raise OpenAIRequestError(
                "response_format json_schema needs a schema", "response_format.json_schema"
            )
        return schema
    raise OpenAIRequestError(
        f"response_format type {response_format.type!r} is not supported "
        "(text, json_object or json_schema)",
        "response_format.type",
    )


def _options(
    request: ChatCompletionRequest | CompletionRequest, limit: int | None
) -> dict[str, Any]:
    """Sampling options: defaults, then ``extra_body`` options, then the OpenAI fields."""
    options: dict[str, Any] = {"temperature": 1.0, "top_p": 1.0}
    if request.options:
        checked_options(request.options)
        options.update(request.options)
    for name in ("num_ctx", "top_k", "min_p", "repeat_penalty"):
        value = getattr(request, name)
        if value is not None:
            options[name] = value
    if request.temperature is not None:
        options["temperature"] = request.temperature
    if request.top_p is not None:
        options["top_p"] = request.top_p
    if limit is not None:
        # OpenAI's own minimum (a legacy completion may ask for none); Ollama would take
        # -1 for 'no limit' and serve the client's mistake at length
        least = 0 if isinstance(request, CompletionRequest) else 1
        if limit < least:
            name = "max_tokens"
            if getattr(request, "max_completion_tokens", None) is not None:
                name = "max_completion_tokens"
            raise OpenAIRequestError(f"{name} must be at least {least}, not {limit}", name)
        options["num_predict"] = limit
    stop = request.stop
    if stop is not None:
        options["stop"] = [stop] if isinstance(stop, str) else stop
    for name in ("seed", "frequency_penalty", "presence_penalty"):
        value = getattr(request, name)
        if value is not None:
            options[name] = value
    return options


def _single_choice(value: int | None, param: str) -> None:
    if value is not None and value != 1:
        raise OpenAIRequestError(
            f"{param} must be 1: herd returns one choice per request (send {value} requests "
            "instead)",
            param,
        )


def _prompt(prompt: str | list[Any] | None) -> str:
    if prompt is None:
        raise OpenAIRequestError("prompt is required", "prompt")
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        return prompt[0]
    if isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
        raise OpenAIRequestError(
            "prompt must be one string: herd returns one choice per request", "prompt"
        )
    raise OpenAIRequestError(
        "prompt must be a string: herd's nodes complete text, not token ids", "prompt"
    )
