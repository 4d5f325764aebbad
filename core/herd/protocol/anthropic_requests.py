"""Anthropic Messages requests to the canonical Ollama ``/api/chat`` body (pure).

The rules: ``system`` (a string or text blocks) becomes the first ``system`` message; a
user turn's text blocks are joined by newlines and its images become the message's
``images``; each ``tool_result`` block becomes its own ``tool`` message (named after the
``tool_use`` it answers), before the turn's remaining text; an assistant turn's
``tool_use`` blocks become ``tool_calls`` and its ``thinking`` blocks ``thinking``.
``max_tokens`` is ``options.num_predict``, ``stop_sequences`` ``options.stop``;
``temperature`` / ``top_p`` / ``top_k`` go to ``options`` only when sent (the model's own
defaults apply otherwise). ``thinking`` enabled or adaptive is ``think: true``, disabled is
``think: false``. ``output_config.format`` (a JSON schema) is Ollama's ``format``.
``tool_choice`` ``none`` drops the tools, ``tool`` keeps only the named
one; ``auto`` and ``any`` offer them all (a local model cannot be forced to call one).

Example:
    >>> from herd.protocol.anthropic import decode_anthropic
    >>> req = decode_anthropic(b'{"model": "m", "max_tokens": 8, "system": "be brief",'
    ...     b' "messages": [{"role": "user", "content": "hi"}]}')
    >>> body = messages_to_ollama(req, "m")
    >>> [m["role"] for m in body["messages"]], body["options"]["num_predict"]
    (['system', 'user'], 8)
"""

from __future__ import annotations

from typing import Any

from herd.protocol.anthropic import (
    AnthropicRequestError,
    DocumentBlock,
    ImageBlock,
    MessageParam,
    MessagesRequest,
    RedactedThinkingBlock,
    TextBlock,
    ThinkingBlock,
    ToolParam,
    ToolResultBlock,
    ToolUseBlock,
)

__all__ = ["check_messages", "estimate_input_tokens", "messages_to_ollama"]

CHARS_PER_TOKEN = 4
IMAGE_TOKENS = 576


def check_messages(request: MessagesRequest, *, need_max_tokens: bool = True) -> None:
    """The checks Anthropic makes before anything else (400s naming the field)."""
    if not request.model:
        raise AnthropicRequestError("model: Field required")
    if need_max_tokens:
        if request.max_tokens is None:
            raise AnthropicRequestError("max_tokens: Field required")
        if request.max_tokens < 1:
            raise AnthropicRequestError("max_tokens: must be at least 1")
    if not request.messages:
        raise AnthropicRequestError("messages: at least one message is required")
    for index, message in enumerate(request.messages):
        if message.role not in ("user", "assistant"):
            raise AnthropicRequestError(
                f"messages.{index}.role: Input should be 'user' or 'assistant'"
            )


def messages_to_ollama(request: MessagesRequest, model: str) -> dict[str, Any]:
    """The Ollama ``/api/chat`` body for a Messages request.

    Args:
        request: The decoded request (see :func:`check_messages`).
        model: The model name to send to the node (after aliases).

    Raises:
        AnthropicRequestError: an image given by URL, a document block, a bad value.
    """
    messages: list[dict[str, Any]] = []
    system = _system_text(request.system)
    if system:
        messages.append({"role": "system", "content": system})
    call_names: dict[str, str] = {}
    for index, message in enumerate(request.messages or []):
        messages.extend(_turn(message, index, call_names))
    body: dict[str, Any] = {
        "model": model,
        "messages": messages,
        "stream": bool(request.stream),
    }
    tools = _tools(request.tools, request)
    if tools:
        body["tools"] = tools
    if request.thinking is not None:
        body["think"] = request.thinking.type != "disabled"
    fmt = request.output_config.format if request.output_config is not None else None
    if fmt is not None:
        schema = fmt.get("schema")
        if fmt.get("type") != "json_schema" or not isinstance(schema, dict):
            raise AnthropicRequestError("output_config.format: expected a json_schema")
        body["format"] = schema
    options: dict[str, Any] = {}
    if request.max_tokens is not None:
        options["num_predict"] = request.max_tokens
    if request.temperature is not None:
        options["temperature"] = request.temperature
    if request.top_p is not None:
        options["top_p"] = request.top_p
    if request.top_k is not None:
        options["top_k"] = request.top_k
    if request.stop_sequences:
        options["stop"] = list(request.stop_sequences)
    if options:
        body["options"] = options
    return body


def estimate_input_tokens(request: MessagesRequest) -> int:
    """Input tokens, estimated (four characters a token, a fixed count per image).

    What ``/v1/messages/count_tokens`` answers: Ollama nodes have no tokenizer endpoint, so
    the count is the router's estimate, the same one its context-fit routing uses.
    """
    chars = len(_system_text(request.system))
    images = 0
    for message in request.messages or []:
        if isinstance(message.content, str):
            chars += len(message.content)
            continue
        for block in message.content:
            if isinstance(block, TextBlock):
                chars += len(block.text)
            elif isinstance(block, ImageBlock):
                images += 1
            elif isinstance(block, ToolUseBlock):
                chars += len(block.name) + len(str(block.input))
            elif isinstance(block, ToolResultBlock):
                text, pictures = _result_content(block, "")
                chars += len(text)
                images += len(pictures)
            elif isinstance(block, ThinkingBlock):
                chars += len(block.thinking)
    for tool in request.tools or []:
        chars += len(tool.name) + len(tool.description or "") + len(str(tool.input_schema or ""))
    return max(1, chars // CHARS_PER_TOKEN + images * IMAGE_TOKENS)


def _system_text(system: str | list[TextBlock] | None) -> str:
    if system is None:
        return ""
    if isinstance(system, str):
        return system
    return "\n".join(block.text for block in system)


def _turn(message: MessageParam, index: int, call_names: dict[str, str]) -> list[dict[str, Any]]:
    """One Anthropic turn as one or more Ollama messages."""
    role = message.role
    if isinstance(message.content, str):
        return [{"role": role, "content": message.content}]
    texts: list[str] = []
    images: list[str] = []
    thinking: list[str] = []
    calls: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    for position, block in enumerate(message.content):
        where = f"messages.{index}.content.{position}"
        if isinstance(block, TextBlock):
            texts.append(block.text)
        elif isinstance(block, ImageBlock):
            images.append(_image_data(block, where))
        elif isinstance(block, ToolUseBlock):
            if role != "assistant":
                raise AnthropicRequestError(f"{where}: tool_use blocks belong to assistant turns")
            call_names[block.id] = block.name
            calls.append(
                {
                    "id": block.id,
                    "function": {"index": len(calls), "name": block.name, "arguments": block.input},
                }
            )
        elif isinstance(block, ToolResultBlock):
            if role != "user":
                raise AnthropicRequestError(f"{where}: tool_result blocks belong to user turns")
            text, pictures = _result_content(block, where)
            result: dict[str, Any] = {"role": "tool", "content": text}
            if block.tool_use_id:
                result["tool_call_id"] = block.tool_use_id
            name = call_names.get(block.tool_use_id)
            if name:
                result["tool_name"] = name
            if pictures:
                result["images"] = pictures
            results.append(result)
        elif isinstance(block, ThinkingBlock):
            thinking.append(block.thinking)
        elif isinstance(block, DocumentBlock):
            raise AnthropicRequestError(f"{where}: document blocks are not supported by herd")
        elif isinstance(block, RedactedThinkingBlock):
            continue  # only Anthropic can read it
    out = results
    if texts or images or calls or thinking or not results:
        entry: dict[str, Any] = {"role": role, "content": "\n".join(texts)}
        if images:
            entry["images"] = images
        if thinking and role == "assistant":
            entry["thinking"] = "\n".join(thinking)
        if calls:
            entry["tool_calls"] = calls
        out = [*results, entry]
    return out


def _result_content(block: ToolResultBlock, where: str) -> tuple[str, list[str]]:
    content = block.content
    if content is None:
        text, images = "", []
    elif isinstance(content, str):
        text, images = content, []
    else:
        text = "\n".join(part.text for part in content if isinstance(part, TextBlock))
        images = [
            _image_data(part, f"{where}.content.{i}")
            for i, part in enumerate(content)
            if isinstance(part, ImageBlock)
        ]
    if block.is_error:
        text = f"Error: {text}" if text else "Error"
    return text, images


def _image_data(block: ImageBlock, where: str) -> str:
    source = block.source
    if source.type == "base64" and source.data:
        return source.data
    if source.type == "url":
        raise AnthropicRequestError(
            f"{where}.source: image URLs are not supported, please send base64 data"
        )
    raise AnthropicRequestError(f"{where}.source: expected a base64 image source with data")


def _tools(tools: list[ToolParam] | None, request: MessagesRequest) -> list[dict[str, Any]]:
    choice = request.tool_choice
    if not tools or (choice is not None and choice.type == "none"):
        return []
    wanted = choice.name if choice is not None and choice.type == "tool" else None
    out = []
    for tool in tools:
        if tool.type not in (None, "custom") or not tool.name:
            continue  # a server tool (web search, code execution) runs on Anthropic's side
        if wanted and tool.name != wanted:
            continue
        function: dict[str, Any] = {"name": tool.name}
        if tool.description is not None:
            function["description"] = tool.description
        function["parameters"] = tool.input_schema or {"type": "object", "properties": {}}
        out.append({"type": "function", "function": function})
    if wanted and not out:
        raise AnthropicRequestError(f"tool_choice.name: no tool named {wanted!r} in tools")
    return out
