"""Speech-to-text: ``POST /api/transcribe`` (herd's own) and ``POST /v1/audio/transcriptions``.

Both take ``multipart/form-data`` with the audio as a file part (``audio`` or ``file``),
check it before any node is bothered (size, emptiness, a format herd accepts), and send
it to a node whose services offer the model for ``transcribe``. The node answers with the
full (``verbose_json``) result, which the router renders in the format the client asked for.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, post
from litestar.datastructures import UploadFile
from litestar.exceptions import ClientException, HTTPException

from herd._engine.gateway import Gateway
from herd._engine.routes.common import JSON
from herd._engine.routes.workload_common import (
    WorkloadOff,
    check_enabled,
    default_model,
    open_job,
    start_job,
    take_job,
    unreadable,
    workload_off_handler,
)
from herd.errors import HerdError
from herd.protocol.limits import MAX_MODEL_NAME
from herd.protocol.workloads import (
    AUDIO_FORMATS,
    TRANSCRIPT_FORMATS,
    render_transcript,
    sniff_audio,
    transcript_events,
)

__all__ = ["ROUTES"]

_FORM_SLACK = 1024 * 1024  # the other form fields and the multipart framing


class AudioUpload(msgspec.Struct):
    """The checked audio of a transcription request."""

    data: bytes
    filename: str
    content_type: str
    format: str


async def _read_form(request: Request[Any, Any, Any], gateway: Gateway) -> Any:
    limit = gateway.settings.workloads.max_audio_bytes
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit + _FORM_SLACK:
        raise HerdError(413, _too_large(limit), param="file")
    media = request.headers.get("content-type", "")
    if not media.lower().startswith("multipart/form-data"):
        raise HerdError(
            400,
            "send the audio as multipart/form-data, with the file in a part named "
            "`file` (or `audio`)",
            param="file",
        )
    try:
        return await request.form()
    except ClientException as exc:
        raise HerdError(400, f"the multipart body could not be read: {exc.detail}") from None
    except UnicodeDecodeError:
        raise HerdError(400, "a text field of the form is not valid UTF-8") from None
    except HTTPException as exc:
        if exc.status_code == 413:
            raise HerdError(413, _too_large(limit), param="file") from None
        raise


def _too_large(limit: int) -> str:
    return f"the audio file is larger than this router accepts ({limit} bytes)"


async def _audio(form: Any, names: tuple[str, ...], limit: int) -> AudioUpload:
    upload = next((form.get(name) for name in names if form.get(name) is not None), None)
    if upload is None:
        raise HerdError(
            400, f"the form has no audio file (a part named `{names[0]}`)", param="file"
        )
    if not isinstance(upload, UploadFile):
        raise HerdError(
            400,
            f"`{names[0]}` must be a file part (with a filename), not a text field",
            param="file",
        )
    data = await upload.read(limit + 1)
    await upload.close()
    if not data:
        raise HerdError(400, "the audio file is empty", param="file")
    if len(data) > limit:
        raise HerdError(413, _too_large(limit), param="file")
    kind = sniff_audio(data)
    if kind is None:
        raise HerdError(
            400,
            f"the audio file {upload.filename!r} is corrupt or not in a format herd accepts "
            f"({', '.join(AUDIO_FORMATS)})",
            param="file",
        )
    return AudioUpload(data, upload.filename or "audio", upload.content_type or "", kind)


def _text(form: Any, name: str) -> str:
    value = form.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise HerdError(400, f"`{name}` must be a text field", param=name)
    return value.strip()


def _flag(form: Any, name: str) -> bool:
    raw = _text(form, name).lower()
    if raw in ("", "false", "0"):
        return False
    if raw in ("true", "1"):
        return True
    raise HerdError(400, f"{name} must be true or false", param=name)


def _granularities(form: Any, response_format: str) -> list[str]:
    """``timestamp_granularities[]`` (repeated parts, as OpenAI's SDKs send an array)."""
    values = [
        *form.getall("timestamp_granularities[]", []),
        *form.getall("timestamp_granularities", []),
    ]
    asked = []
    for value in values:
        if not isinstance(value, str) or value.strip() not in ("word", "segment"):
            raise HerdError(
                400,
                "timestamp_granularities must be word or segment",
                param="timestamp_granularities",
            )
        if value.strip() not in asked:
            asked.append(value.strip())
    if asked and response_format != "verbose_json":
        raise HerdError(
            400,
            "timestamp_granularities need response_format verbose_json",
            param="timestamp_granularities",
        )
    return asked


def _temperature(form: Any) -> float | None:
    raw = _text(form, "temperature")
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise HerdError(400, "temperature must be a number from 0 to 1", param="temperature")
    return value


async def _transcribe(request: Request[Any, Any, Any], api: str) -> Response[bytes]:
    exchange = start_job(
        request, api=api, endpoint="transcribe", kind="stt", capability="transcribe"
    )
    gateway = exchange.gateway
    check_enabled(gateway, "transcription")
    settings = gateway.settings.workloads
    form = await _read_form(request, gateway)
    names = ("file", "audio") if api == "openai" else ("audio", "file")
    audio = await _audio(form, names, settings.max_audio_bytes)
    model = _text(form, "model")
    if len(model) > MAX_MODEL_NAME:
        raise HerdError(400, f"model: longer than {MAX_MODEL_NAME} characters", param="model")
    if not model:
        if api == "openai":
            raise HerdError(400, "model is required", param="model")
        model = default_model(gateway, "transcribe")
    response_format = _text(form, "response_format") or "json"
    if response_format not in TRANSCRIPT_FORMATS:
        raise HerdError(
            400,
            f"response_format must be one of {', '.join(TRANSCRIPT_FORMATS)}",
            param="response_format",
        )
    stream = _flag(form, "stream")
    granularities = _granularities(form, response_format)
    body = {
        "audio": audio.data,
        "filename": audio.filename,
        "content_type": audio.content_type,
        "format": audio.format,
        "language": _text(form, "language"),
        "prompt": _text(form, "prompt"),
        "temperature": _temperature(form),
        "response_format": response_format,
    }
    if granularities:
        body["timestamp_granularities"] = granularities
    take_job(exchange, model, body)
    await open_job(exchange, settings.transcription_timeout)
    try:
        result = _result(exchange.attempt.reply.first)
    except ValueError as exc:
        raise unreadable(exchange, exc) from None
    exchange.done()
    if api == "ollama":
        content = msgspec.json.encode({"model": model, **_native(result)})
        return Response(content, media_type=JSON, headers=exchange.headers())
    if stream:  # (OpenAI's streamed events, for clients that ask for them)
        headers = {**exchange.headers(), "content-type": "text/event-stream"}
        return Response(transcript_events(result), headers=headers)
    content, media = render_transcript(result, response_format)
    # The type as a header: Litestar appends a second charset to a text/* media_type.
    return Response(content, headers={**exchange.headers(), "content-type": media})


def _result(body: bytes) -> dict[str, Any]:
    try:
        data = msgspec.json.decode(body)
    except msgspec.DecodeError:
        data = {"text": body.decode("utf-8", "replace")}  # a server that answered plain text
    if not isinstance(data, dict) or not isinstance(data.get("text"), str):
        raise ValueError("the transcription reply has no text")
    return data


def _native(result: dict[str, Any]) -> dict[str, Any]:
    segments = [
        {"start": s.get("start", 0.0), "end": s.get("end", 0.0), "text": str(s.get("text", ""))}
        for s in result.get("segments") or []
        if isinstance(s, dict)
    ]
    return {
        "text": result["text"].strip(),
        "language": result.get("language", ""),
        "duration": result.get("duration", 0.0),
        "segments": segments,
    }


_HANDLERS = {WorkloadOff: workload_off_handler}


@post("/api/transcribe", status_code=200, exception_handlers=_HANDLERS)
async def transcribe(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Transcribe the multipart ``audio`` (or ``file``) part; JSON with text and segments."""
    return await _transcribe(request, "ollama")


@post("/v1/audio/transcriptions", status_code=200, exception_handlers=_HANDLERS)
async def transcriptions(request: Request[Any, Any, Any]) -> Response[bytes]:
    """OpenAI's transcription endpoint: json, text, srt, vtt or verbose_json."""
    return await _transcribe(request, "openai")


ROUTES = [transcribe, transcriptions]
