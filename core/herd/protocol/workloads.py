"""Wire types and pure helpers for image generation and speech-to-text.

Used by the router's routes and by ``herd-node-services``: request Structs, the audio
formats herd accepts (recognised by their first bytes), and the transcript renderings
OpenAI clients ask for (json, text, srt, vtt, verbose_json).
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from herd.protocol.limits import ModelName

__all__ = [
    "AUDIO_FORMATS",
    "TRANSCRIPT_FORMATS",
    "ImageRequest",
    "OpenAIImageRequest",
    "parse_size",
    "render_transcript",
    "sniff_audio",
    "transcript_events",
    "upstream_error_message",
]

#: What ``response_format`` may ask of a transcription, and the Content-Type of each.
TRANSCRIPT_FORMATS: dict[str, str] = {
    "json": "application/json",
    "verbose_json": "application/json",
    "text": "text/plain; charset=utf-8",
    "srt": "text/plain; charset=utf-8",
    "vtt": "text/plain; charset=utf-8",
}

#: The audio formats herd accepts, as ``sniff_audio`` names them.
AUDIO_FORMATS = ("wav", "mp3", "m4a", "ogg", "flac", "webm")

_SIZE = re.compile(r"^\s*(\d{1,5})\s*[xX]\s*(\d{1,5})\s*$")


class ImageRequest(msgspec.Struct, omit_defaults=True):
    """``POST /api/generate-image``: herd's own image request (the reply is a PNG).

    Also the canonical body a backend receives for an image job.
    """

    prompt: str
    model: ModelName = ""
    negative_prompt: str | None = None
    width: int | None = None
    height: int | None = None
    steps: int | None = None
    seed: int | None = None
    guidance: float | None = None
    n: int = 1

    def __post_init__(self) -> None:
        if not self.prompt.strip():
            raise ValueError("prompt is required")
        for name in ("width", "height"):
            value = getattr(self, name)
            if value is not None and not 16 <= value <= 4096:
                raise ValueError(f"{name} must be between 16 and 4096")
        if self.steps is not None and not 1 <= self.steps <= 500:
            raise ValueError("steps must be between 1 and 500")
        if not 1 <= self.n <= 10:
            raise ValueError("n must be between 1 and 10")


class OpenAIImageRequest(msgspec.Struct):
    """``POST /v1/images/generations`` (the fields herd reads; others are ignored)."""

    prompt: str
    model: ModelName = ""
    n: int = 1
    size: str | None = None
    response_format: str | None = None
    negative_prompt: str | None = None
    steps: int | None = None
    seed: int | None = None
    guidance: float | None = None


def parse_size(size: str | None) -> tuple[int, int] | None:
    """``"1024x768"`` -> ``(1024, 768)``; ``None``/``"auto"`` -> None.

    Raises:
        ValueError: anything else.
    """
    if size is None or size.strip().lower() in ("", "auto"):
        return None
    match = _SIZE.match(size)
    if match is None:
        raise ValueError(f"size must look like 1024x1024 or be auto, not {size!r}")
    return int(match.group(1)), int(match.group(2))


def sniff_audio(data: bytes) -> str | None:
    """The audio format of a file by its first bytes, or None when it is none herd takes.

    Example:
        >>> sniff_audio(b"RIFF\\x24\\x00\\x00\\x00WAVEfmt ")
        'wav'
    """
    head = data[:64]
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "wav"
    if head[:4] == b"fLaC":
        return "flac"
    if head[:4] == b"OggS":
        return "ogg"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "webm"
    if head[4:8] == b"ftyp":
        return "m4a"
    if head[:3] == b"ID3":
        return "mp3"
    # an MPEG audio frame: 11 sync bits, a layer that is not "reserved"
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0 and head[1] & 0x06:
        return "mp3"
    return None


def render_transcript(result: dict[str, Any], response_format: str) -> tuple[bytes, str]:
    """A transcription result (``verbose_json`` shape) in the format a client asked for.

    Args:
        result: ``{"text", "language", "duration", "segments": [{"start", "end", "text"}]}``;
            only ``text`` is required.
        response_format: One of :data:`TRANSCRIPT_FORMATS`.

    Returns:
        The body and its Content-Type.
    """
    text = str(result.get("text") or "").strip()
    media = TRANSCRIPT_FORMATS[response_format]
    if response_format == "json":
        body: dict[str, Any] = {"text": text}
        if result.get("duration"):
            body["usage"] = {"type": "duration", "seconds": round(float(result["duration"]))}
        return msgspec.json.encode(body), media
    if response_format == "verbose_json":
        full = {"task": "transcribe", "language": "", "duration": 0.0, "segments": []}
        full.update(result)
        full["text"] = text
        return msgspec.json.encode(full), media
    if response_format == "text":
        return (text + "\n").encode(), media
    cues = _cues(result, text)
    if response_format == "srt":
        blocks = [
            f"{index}\n{_stamp(start, ',')} --> {_stamp(end, ',')}\n{words}\n"
            for index, (start, end, words) in enumerate(cues, 1)
        ]
        return "\n".join(blocks).encode() + (b"\n" if blocks else b""), media
    blocks = [
        f"{_stamp(start, '.')} --> {_stamp(end, '.')}\n{words}\n" for start, end, words in cues
    ]
    return ("WEBVTT\n\n" + "\n".join(blocks) + ("\n" if blocks else "")).encode(), media


def transcript_events(result: dict[str, Any]) -> bytes:
    """A transcription result as OpenAI's streamed events (``stream=true``): one
    ``transcript.text.delta`` per segment, then ``transcript.text.done`` with the whole
    text (the deltas add up to it). The node answers whole, so they come at once."""
    text = str(result.get("text") or "").strip()
    pieces = [str(s.get("text") or "") for s in result.get("segments") or [] if s.get("text")]
    if "".join(pieces).strip() != text:  # (no segments, or ones that do not add up)
        pieces = [text]
    if pieces:
        pieces[0] = pieces[0].lstrip()
        pieces[-1] = pieces[-1].rstrip()
    events = [{"type": "transcript.text.delta", "delta": piece} for piece in pieces if piece]
    events.append({"type": "transcript.text.done", "text": text})
    return b"".join(b"data: " + msgspec.json.encode(event) + b"\n\n" for event in events)


def _cues(result: dict[str, Any], text: str) -> list[tuple[float, float, str]]:
    cues = []
    for segment in result.get("segments") or []:
        words = str(segment.get("text") or "").strip()
        if words:
            cues.append((float(segment.get("start") or 0), float(segment.get("end") or 0), words))
    if not cues and text:
        cues.append((0.0, float(result.get("duration") or 0.0), text))
    return cues


def _stamp(seconds: float, separator: str) -> str:
    millis = max(0, round(seconds * 1000))
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def upstream_error_message(body: bytes, status: int) -> str:
    """The message of a node's error body: OpenAI's shape, Ollama's, FastAPI's, or text."""
    try:
        data = msgspec.json.decode(body)
    except msgspec.DecodeError:
        data = None
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if isinstance(error, str) and error:
            return error
        if isinstance(data.get("detail"), str):
            return str(data["detail"])
    text = body.decode("utf-8", "replace").strip()
    return text[:500] or f"HTTP {status}"
