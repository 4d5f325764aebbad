"""The emulator's speech-to-text: ``POST /v1/audio/transcriptions`` (Ollama v0.20+).

The transcript is deterministic: words drawn from the model and the audio's bytes (see
:func:`expected_transcript`), spread over the audio's length in segments. Audio that is
empty or in no format herd knows gets a 400, as a real server fails to decode it. Armed
``hang``/``fail`` injections apply; a client that goes away cancels the job.
"""

from __future__ import annotations

import hashlib
import struct

from aiohttp import web
from herd.protocol.workloads import TRANSCRIPT_FORMATS, render_transcript, sniff_audio

from herd_sim.engine import SimEngine
from herd_sim.generation import inference_endpoint
from herd_sim.images import openai_error
from herd_sim.models import EmulatedModel
from herd_sim.scheduler import effective_num_ctx
from herd_sim.text import expected_reply

__all__ = ["TRANSCRIBE_MODEL", "add_transcription_routes", "audio_seconds", "expected_transcript"]

TRANSCRIBE_MODEL = EmulatedModel(
    name="sim-whisper:tiny",
    size=75_000_000,
    family="whisper",
    parameter_size="39M",
    quantization_level="F16",
    context_length=448,
    capabilities=["audio"],
)
"""A speech-to-text model for emulated nodes (not among the default models)."""

WORDS_PER_SECOND = 2.5
WORDS_PER_SEGMENT = 6


def audio_seconds(data: bytes) -> float:
    """The length of a WAV file from its header; other formats: a guess at 16 kB/s."""
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        offset = 12
        byte_rate = 0
        while offset + 8 <= len(data):
            tag, size = (
                data[offset : offset + 4],
                struct.unpack("<I", data[offset + 4 : offset + 8])[0],
            )
            if tag == b"fmt " and size >= 12:
                byte_rate = struct.unpack("<I", data[offset + 16 : offset + 20])[0]
            if tag == b"data" and byte_rate:
                return round(min(size, len(data) - offset - 8) / byte_rate, 3)
            offset += 8 + size + (size & 1)
    return round(len(data) / 16_000, 3)


def expected_transcript(model: str, audio: bytes) -> str:
    """The text the emulator hears in ``audio``."""
    seconds = audio_seconds(audio)
    count = max(3, min(200, round(seconds * WORDS_PER_SECOND)))
    digest = hashlib.sha256(audio).hexdigest()
    return "".join(expected_reply(model, f"audio:{digest}", count)).strip()


def _segments(text: str, seconds: float) -> list[dict[str, object]]:
    words = text.split()
    chunks = [words[i : i + WORDS_PER_SEGMENT] for i in range(0, len(words), WORDS_PER_SEGMENT)]
    per_word = seconds / max(1, len(words))
    segments, done = [], 0
    for index, chunk in enumerate(chunks):
        start, done = done * per_word, done + len(chunk)
        segments.append(
            {
                "id": index,
                "start": round(start, 3),
                "end": round(done * per_word, 3),
                "text": " " + " ".join(chunk),
            }
        )
    return segments


def _words(text: str, seconds: float) -> list[dict[str, object]]:
    """Each word's times, spread evenly over the audio as the segments are."""
    words = text.split()
    per_word = seconds / max(1, len(words))
    return [
        {"word": word, "start": round(i * per_word, 3), "end": round((i + 1) * per_word, 3)}
        for i, word in enumerate(words)
    ]


@inference_endpoint
async def transcriptions(request: web.Request, engine: SimEngine) -> web.StreamResponse:
    """``POST /v1/audio/transcriptions`` (multipart ``file``, ``model``, ``response_format``)."""
    try:
        form = await request.post()
    except ValueError as exc:
        return openai_error(400, f"invalid multipart body: {exc}")
    upload = form.get("file")
    model = str(form.get("model") or "")
    response_format = str(form.get("response_format") or "json")
    if not isinstance(upload, web.FileField):
        return openai_error(400, "file is required", "file")
    if not model:
        return openai_error(400, "model is required", "model")
    if response_format not in TRANSCRIPT_FORMATS:
        return openai_error(
            400, f"unsupported response_format {response_format!r}", "response_format"
        )
    disk = engine.catalog.find(model)
    if disk is None:
        return openai_error(404, f'model "{model}" not found, try pulling it first', "model")
    if not disk.model.has("audio"):
        return openai_error(400, f'"{model}" does not support audio', "model")
    audio = upload.file.read()
    if not audio or sniff_audio(audio) is None:
        return openai_error(400, "failed to decode audio: the file is empty or corrupt", "file")
    num_ctx = effective_num_ctx(engine.config, disk.model, None)
    async with engine.scheduler.lease(disk, num_ctx, engine.default_keep_alive):
        seconds = audio_seconds(audio)
        text = expected_transcript(model, audio)
        result = {
            "task": "transcribe",
            "language": str(form.get("language") or "english"),
            "duration": seconds,
            "text": text,
            "segments": _segments(text, seconds),
        }
        if "word" in form.getall("timestamp_granularities[]", []):
            result["words"] = _words(text, seconds)
    engine.stats.completed += 1
    body, media = render_transcript(result, response_format)
    return web.Response(body=body, headers={"Content-Type": media})


def add_transcription_routes(app: web.Application) -> None:
    """Register ``/v1/audio/transcriptions`` on the emulator's app."""
    app.router.add_post("/v1/audio/transcriptions", transcriptions)
