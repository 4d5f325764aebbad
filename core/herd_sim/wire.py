"""Wire types and decoding rules of the emulator: request Structs, Go-like errors, durations."""

from __future__ import annotations

import binascii
import re
import string
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import msgspec
from aiohttp import web

NDJSON = "application/x-ndjson"
THINK_LEVELS = ("low", "medium", "high", "max")
INTEGER_OPTIONS = ("num_ctx", "num_predict", "seed", "top_k", "num_keep", "repeat_last_n")
FLOAT_OPTIONS = ("temperature", "top_p", "min_p", "typical_p", "repeat_penalty")
_BASE64_ALPHABET = frozenset(string.ascii_letters + string.digits + "+/=")
_EXPECTED = re.compile(r"Expected `([^`]*)`, got `([^`]*)`(?: - at `\$([^`]*)`)?")
_INDEX = re.compile(r"\[\d+\]")
_GO_TYPES = {
    "str": "string",
    "int": "int",
    "float": "float64",
    "bool": "bool",
    "object": "map[string]interface {}",
    "array": "[]interface {}",
}
_JSON_KINDS = {"str": "string", "int": "number", "float": "number"}
_DURATION_PART = re.compile(r"([0-9]*\.?[0-9]*)(ns|us|µs|μs|ms|s|m|h)")
_DURATION_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_encoder = msgspec.json.Encoder()
RequestT = TypeVar("RequestT")


class SimError(Exception):
    """An error answered as ``{"error": message}`` with ``status`` (before the first byte)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class ToolCallFunction(msgspec.Struct, omit_defaults=True):
    """``function`` of a tool call; ``arguments`` must be an object."""

    name: str = ""
    arguments: dict[str, Any] = {}
    index: int | None = None


class ToolCall(msgspec.Struct, omit_defaults=True):
    """A tool call in an assistant message."""

    function: ToolCallFunction
    id: str | None = None


class Message(msgspec.Struct, omit_defaults=True):
    """A chat message; ``content`` must be a string, ``images`` raw base64."""

    role: str | None = None
    content: str | None = None
    thinking: str | None = None
    images: list[str] | None = None
    tool_calls: list[ToolCall] | None = None
    tool_name: str | None = None
    tool_call_id: str | None = None


class ToolFunction(msgspec.Struct):
    """``function`` of a tool definition."""

    name: str = ""
    description: str | None = None
    parameters: dict[str, Any] | None = None


class Tool(msgspec.Struct):
    """A tool offered to the model."""

    type: str | None = "function"
    function: ToolFunction | None = None


class ChatRequest(msgspec.Struct):
    """Body of ``POST /api/chat``."""

    model: str | None = None
    messages: list[Message] | None = None
    tools: list[Tool] | None = None
    format: Any = None
    options: dict[str, Any] | None = None
    stream: bool | None = None
    keep_alive: float | str | None = None
    think: bool | str | None = None
    truncate: bool | None = None
    shift: bool | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None


class GenerateRequest(msgspec.Struct):
    """Body of ``POST /api/generate``."""

    model: str | None = None
    prompt: str | None = None
    suffix: str | None = None
    system: str | None = None
    template: str | None = None
    raw: bool | None = None
    images: list[str] | None = None
    context: list[int] | None = None
    format: Any = None
    options: dict[str, Any] | None = None
    stream: bool | None = None
    keep_alive: float | str | None = None
    think: bool | str | None = None
    truncate: bool | None = None
    shift: bool | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None


class EmbedRequest(msgspec.Struct):
    """Body of ``POST /api/embed``; ``input`` is checked by hand (string or strings)."""

    model: str | None = None
    input: Any = None
    truncate: bool | None = None
    dimensions: int | None = None
    options: dict[str, Any] | None = None
    keep_alive: float | str | None = None


class EmbeddingsRequest(msgspec.Struct):
    """Body of the legacy ``POST /api/embeddings``."""

    model: str | None = None
    prompt: str | None = None
    options: dict[str, Any] | None = None
    keep_alive: float | str | None = None


class ModelRequest(msgspec.Struct):
    """Body of show, pull and delete (``name`` is the old spelling of ``model``)."""

    model: str | None = None
    name: str | None = None
    verbose: bool | None = None
    insecure: bool | None = None
    stream: bool | None = None

    @property
    def model_name(self) -> str:
        return self.model or self.name or ""


class CopyRequest(msgspec.Struct):
    """Body of ``POST /api/copy``."""

    source: str | None = None
    destination: str | None = None


@dataclass(frozen=True)
class GenerationOptions:
    """The ``options`` keys the emulator acts on."""

    num_ctx: int | None = None
    num_predict: int | None = None
    seed: int | None = None


def decode_body(body: bytes, request_type: type[RequestT]) -> RequestT:
    """Decode a request body like Ollama's gin binding does, raising :class:`SimError` 400."""
    if not body:
        raise SimError(400, "missing request body")
    try:
        return msgspec.json.decode(body, type=request_type)
    except msgspec.ValidationError as error:
        raise SimError(400, _go_unmarshal_message(str(error), request_type.__name__)) from None
    except msgspec.DecodeError as error:
        raise SimError(400, str(error)) from None


def _go_unmarshal_message(message: str, struct_name: str) -> str:
    match = _EXPECTED.match(message)
    if match is None:
        return message
    expected = next(
        (kind.strip() for kind in match.group(1).split("|") if kind.strip() != "null"), "null"
    )
    got = match.group(2)
    kind = _JSON_KINDS.get(got, got)
    go_type = _GO_TYPES.get(expected, expected)
    path = _INDEX.sub("", match.group(3) or "")
    if not path:
        return f"json: cannot unmarshal {kind} into Go value of type api.{struct_name}"
    field_name = f"{struct_name}{path}"
    return f"json: cannot unmarshal {kind} into Go struct field {field_name} of type {go_type}"


def parse_go_duration(text: str) -> float:
    """Seconds in a Go duration string such as ``"5m"``, ``"1h30m"``, ``"-1m"`` or ``"0"``."""
    body = text.strip()
    sign = -1.0 if body.startswith("-") else 1.0
    body = body.lstrip("+-")
    if body == "0":
        return 0.0
    position, total = 0, 0.0
    while position < len(body):
        match = _DURATION_PART.match(body, position)
        if match is None or match.group(1) in ("", "."):
            if body[position:].replace(".", "").isdigit():
                raise SimError(400, f'time: missing unit in duration "{text}"')
            raise SimError(400, f'time: invalid duration "{text}"')
        total += float(match.group(1)) * _DURATION_SECONDS[match.group(2)]
        position = match.end()
    if not body:
        raise SimError(400, f'time: invalid duration "{text}"')
    return sign * total


def parse_keep_alive(value: float | str | None, default: float | None) -> float | None:
    """Keep-alive in seconds; ``None`` means forever (any negative value), 0 unloads at once."""
    if value is None:
        return default
    seconds = parse_go_duration(value) if isinstance(value, str) else float(value)
    return None if seconds < 0 else seconds


def parse_options(raw: dict[str, Any] | None) -> GenerationOptions:
    """Check option types like Ollama (a wrong type is a 500) and pick out the used keys."""
    raw = raw or {}
    for key in INTEGER_OPTIONS:
        value = raw.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise SimError(500, f'option "{key}" must be of type integer')
    for key in FLOAT_OPTIONS:
        value = raw.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise SimError(500, f'option "{key}" must be of type float')
    stop = raw.get("stop")
    if stop is not None and not (
        isinstance(stop, list) and all(isinstance(item, str) for item in stop)
    ):
        raise SimError(500, 'option "stop" must be of type array of strings')

    def integer(key: str) -> int | None:
        value = raw.get(key)
        return None if value is None else int(value)

    return GenerationOptions(
        num_ctx=integer("num_ctx"), num_predict=integer("num_predict"), seed=integer("seed")
    )


def parse_think(value: bool | str | None) -> bool | None:
    """``None`` = the model's default; levels count as ``True``; anything else is a 400."""
    if value is None or isinstance(value, bool):
        return value
    if value in THINK_LEVELS:
        return True
    if value == "":
        return None
    raise SimError(
        400, f'invalid think value: "{value}" (must be "high", "medium", "low", true, or false)'
    )


def check_format(value: Any) -> None:
    """``format`` must be unset, ``""``, ``"json"`` or a JSON-schema object."""
    if value is None or value in ("", "json") or isinstance(value, dict):
        return
    raise SimError(
        400,
        f'invalid format: {_encoder.encode(value).decode()}; expected "json" or a valid '
        "JSON Schema object",
    )


def check_top_logprobs(value: int | None) -> None:
    """Ollama's range check on ``top_logprobs``."""
    if value is not None and not 0 <= value <= 20:
        raise SimError(400, "top_logprobs must be between 0 and 20")


def check_image(data: str) -> None:
    """Images must be raw standard base64 (Go's ``[]byte`` JSON decoding); 400 otherwise."""
    cleaned = data.replace("\r", "").replace("\n", "")
    for index, character in enumerate(cleaned):
        if character not in _BASE64_ALPHABET:
            raise SimError(400, f"illegal base64 data at input byte {index}")
    try:
        binascii.a2b_base64(cleaned, strict_mode=True)
    except binascii.Error:
        raise SimError(400, f"illegal base64 data at input byte {len(cleaned)}") from None


def rfc3339(moment: datetime) -> str:
    """RFC 3339 with the fraction's trailing zeros trimmed and ``Z`` for a zero offset."""
    text = moment.isoformat()
    offset = ""
    for marker in ("+", "-"):
        cut = text.rfind(marker)
        if cut > 10:
            text, offset = text[:cut], text[cut:]
            break
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    if offset in ("", "+00:00", "-00:00"):
        offset = "Z"
    return text + offset


def encode_line(payload: dict[str, Any]) -> bytes:
    """One NDJSON line: compact JSON and ``\\n``."""
    return _encoder.encode(payload) + b"\n"


def json_response(payload: Any, status: int = 200) -> web.Response:
    """A JSON reply with Ollama's ``application/json; charset=utf-8``."""
    return web.Response(
        body=_encoder.encode(payload),
        status=status,
        content_type="application/json",
        charset="utf-8",
    )


def error_response(status: int, message: str) -> web.Response:
    """``{"error": message}`` with ``status``."""
    return json_response({"error": message}, status)
