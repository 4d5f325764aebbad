"""OpenAI Responses API requests, and their translation to the canonical Ollama chat (pure).

``POST /v1/responses`` takes ``input`` as a string (one user message) or a list of items:
messages (``role`` + a string or ``input_text`` / ``input_image`` / ``output_text``
parts), ``function_call`` items (an earlier turn's call) and ``function_call_output``
items (its result). ``instructions`` become the first ``system`` message (they are not
carried over from a ``previous_response_id``, as OpenAI documents); ``developer`` is
``system``. Function tools become Ollama tools; other tool types (web search, file
search, computer use) run on OpenAI's side and are left out. ``max_output_tokens`` is
``options.num_predict``, ``text.format`` is ``format``, ``reasoning.effort`` is ``think``.

Example:
    >>> req = decode_responses(b'{"model": "m", "input": "hi", "instructions": "brief"}')
    >>> [m["role"] for m in responses_to_ollama(req, "m", [])["messages"]]
    ['system', 'user']
"""

from __future__ import annotations

from typing import Any

import msgspec

from herd.protocol.openai import OpenAIRequestError, checked_options, decode_openai
from herd.protocol.openai_requests import think_value

__all__ = [
    "FunctionTool",
    "ResponsesRequest",
    "decode_responses",
    "input_messages",
    "responses_to_ollama",
]

_decode_arguments = msgspec.json.Decoder(dict[str, Any]).decode


class FunctionTool(msgspec.Struct, omit_defaults=True, kw_only=True):
    """A tool: ``type: "function"`` with ``name``/``parameters`` at the top level."""

    type: str = "function"
    name: str | None = None
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class TextFormat(msgspec.Struct, omit_defaults=True):
    type: str = "text"
    name: str | None = None
    schema: dict[str, Any] | None = None
    strict: bool | None = None


class TextOptions(msgspec.Struct, omit_defaults=True):
    format: TextFormat | None = None
    verbosity: str | None = None


class Reasoning(msgspec.Struct, omit_defaults=True):
    effort: str | None = None
    summary: str | None = None


class ResponsesRequest(msgspec.Struct, omit_defaults=True):
    """``POST /v1/responses``. ``input`` items are checked by the translator."""

    model: str = ""
    input: str | list[dict[str, Any]] | None = None
    instructions: str | None = None
    tools: list[FunctionTool] | None = None
    tool_choice: str | dict[str, Any] | None = None
    previous_response_id: str | None = None
    stream: bool | None = None
    store: bool | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_output_tokens: int | None = None
    parallel_tool_calls: bool | None = None
    text: TextOptions | None = None
    reasoning: Reasoning | None = None
    metadata: dict[str, Any] | None = None
    user: str | None = None
    truncation: str | None = None
    # Ollama's own knobs and herd's, through the SDK's extra_body
    options: dict[str, Any] | None = None
    keep_alive: float | str | None = None
    think: bool | str | None = None
    fallback_models: list[str] | None = None


def decode_responses(body: bytes) -> ResponsesRequest:
    """Decode and validate a Responses request.

    Raises:
        OpenAIRequestError: empty body, bad JSON, a field of the wrong type.
    """
    return decode_openai(body, ResponsesRequest)


def responses_to_ollama(
    request: ResponsesRequest, model: str, history: list[dict[str, Any]]
) -> dict[str, Any]:
    """The Ollama ``/api/chat`` body for a Responses request.

    Args:
        request: The decoded request.
        model: The model name to send to the node (after aliases).
        history: The Ollama messages of the ``previous_response_id`` chain (may be empty).

    Raises:
        OpenAIRequestError: no ``model``, no input, a malformed item or an unsupported part.
    """
    if not request.model:
        raise OpenAIRequestError("you must provide a model parameter", "model")
    new = input_messages(request.input)
    if not new and not history:
        raise OpenAIRequestError("input must not be empty", "input")
    messages: list[dict[str, Any]] = []
    if request.instructions:
        messages.append({"role": "system", "content": request.instructions})
    messages += history
    messages += new
    body: dict[str, Any] = {"model": model, "messages": messages, "stream": bool(request.stream)}
    tools = _tools(request.tools, request.tool_choice)
    if tools:
        body["tools"] = tools
    fmt = _format(request.text)
    if fmt is not None:
        body["format"] = fmt
    effort = request.reasoning.effort if request.reasoning is not None else None
    think = think_value(effort, request.think)
    if think is not None:
        body["think"] = think
    options: dict[str, Any] = dict(checked_options(request.options) if request.options else {})
    if request.temperature is not None:
        options["temperature"] = request.temperature
    if request.top_p is not None:
        options["top_p"] = request.top_p
    if request.max_output_tokens is not None:
        if request.max_output_tokens < 1:  # (Ollama would read -1 as 'no limit')
            raise OpenAIRequestError(
                f"max_output_tokens must be at least 1, not {request.max_output_tokens}",
                "max_output_tokens",
            )
        options["num_predict"] = request.max_output_tokens
    if options:
        body["options"] = options
    if request.keep_alive is not None:
        body["keep_alive"] = request.keep_alive
    return body


def input_messages(value: str | list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """``input`` as Ollama messages (function calls join the assistant turn before them)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    out: list[dict[str, Any]] = []
    call_names: dict[str, str] = {}
    for index, item in enumerate(value):
        kind = item.get("type") or ("message" if "role" in item else "")
        param = f"input[{index}]"
        if kind == "message":
            out.append(_message(item, param))
        elif kind == "function_call":
            _function_call(item, param, out, call_names)
        elif kind == "function_call_output":
            call_id = _string(item, "call_id", param)
            entry = {"role": "tool", "content": _output_text(item.get("output"), param)}
            entry["tool_call_id"] = call_id
            if call_id in call_names:
                entry["tool_name"] = call_names[call_id]
            out.append(entry)
        elif kind == "reasoning":
            continue  # an earlier turn's reasoning: the model does not need it back
        else:
            raise OpenAIRequestError(
                f"input item type {kind!r} is not supported by herd (message, function_call, "
                "function_call_output)",
                f"{param}.type",
            )
    return out


def _string(item: dict[str, Any], name: str, param: str) -> str:
    value = item.get(name)
    if not isinstance(value, str) or not value:
        raise OpenAIRequestError(f"{name} must be a non-empty string", f"{param}.{name}")
    return value


def _message(item: dict[str, Any], param: str) -> dict[str, Any]:
    role = item.get("role")
    if role not in ("user", "assistant", "system", "developer"):
        raise OpenAIRequestError(
            "role must be one of user, assistant, system, developer", f"{param}.role"
        )
    content = item.get("content")
    texts: list[str] = []
    images: list[str] = []
    if isinstance(content, str):
        texts.append(content)
    elif isinstance(content, list):
        for position, part in enumerate(content):
            where = f"{param}.content[{position}]"
            kind = part.get("type") if isinstance(part, dict) else None
            if kind in ("input_text", "output_text", "text"):
                texts.append(str(part.get("text") or ""))
            elif kind == "refusal":
                texts.append(str(part.get("refusal") or ""))
            elif kind == "input_image":
                images.append(_image(part, where))
            else:
                raise OpenAIRequestError(f"content part type {kind!r} is not supported", where)
    elif content is not None:
        raise OpenAIRequestError("content must be a string or an array of parts", param)
    entry: dict[str, Any] = {
        "role": "system" if role == "developer" else role,
        "content": "\n".join(texts),
    }
    if images:
        entry["images"] = images
    return entry


def _image(part: dict[str, Any], where: str) -> str:
    url = part.get("image_url")
    if isinstance(url, str) and url.startswith("data:"):
        head, sep, data = url.partition(",")
        if sep and head.endswith(";base64"):
            return data
    raise OpenAIRequestError(
        "input_image must be a base64 data URL (file ids and web URLs are not supported)",
        f"{where}.image_url",
    )


def _function_call(
    item: dict[str, Any], param: str, out: list[dict[str, Any]], call_names: dict[str, str]
) -> None:
    call_id = _string(item, "call_id", param)
    name = _string(item, "name", param)
    arguments = item.get("arguments") or ""
    if isinstance(arguments, str):
        try:
            arguments = _decode_arguments(arguments) if arguments.strip() else {}
        except (msgspec.DecodeError, msgspec.ValidationError):
            raise OpenAIRequestError("invalid function call arguments", param) from None
    call_names[call_id] = name
    previous = out[-1] if out else None
    if previous is None or previous["role"] != "assistant":
        previous = {"role": "assistant", "content": ""}
        out.append(previous)
    calls = previous.setdefault("tool_calls", [])
    calls.append(
        {"id": call_id, "function": {"index": len(calls), "name": name, "arguments": arguments}}
    )


def _output_text(output: Any, param: str) -> str:
    if isinstance(output, str):
        return output
    if isinstance(output, list):
        return "\n".join(str(part.get("text") or "") for part in output if isinstance(part, dict))
    raise OpenAIRequestError("output must be a string or an array of parts", f"{param}.output")


def _tools(tools: list[FunctionTool] | None, choice: Any) -> list[dict[str, Any]]:
    if not tools or choice == "none":
        return []
    wanted = choice.get("name") if isinstance(choice, dict) else None
    out = []
    for tool in tools:
        if tool.type != "function" or not tool.name:
            continue  # hosted tools (web_search, file_search, ...) run on OpenAI's side
        if wanted and tool.name != wanted:
            continue
        function: dict[str, Any] = {"name": tool.name}
        if tool.description is not None:
            function["description"] = tool.description
        function["parameters"] = tool.parameters or {"type": "object", "properties": {}}
        out.append({"type": "function", "function": function})
    return out or ([] if not wanted else _tools(tools, None))


def _format(text: TextOptions | None) -> Any:
    fmt = text.format if text is not None else None
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_object":
        return "json"
    if fmt.type == "json_schema":
        if fmt.schema is None:
            raise OpenAIRequestError("text.format json_schema needs a schema", "text.format")
        return fmt.schema
    raise OpenAIRequestError(f"text.format type {fmt.type!r} is not supported", "text.format")
