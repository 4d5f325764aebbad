"""Pure helpers of the workloads: audio recognition, transcript renderings, sizes."""

from __future__ import annotations

import msgspec
import pytest
from herd.protocol.workloads import (
    ImageRequest,
    parse_size,
    render_transcript,
    sniff_audio,
    upstream_error_message,
)

from tests.core.workload_nodes import tone_wav

RESULT = {
    "text": " Hello there. General Kenobi.",
    "language": "english",
    "duration": 3.25,
    "segments": [
        {"start": 0.0, "end": 1.5, "text": " Hello there."},
        {"start": 1.5, "end": 3661.042, "text": " General Kenobi."},
    ],
}


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (tone_wav(0.01)[:64], "wav"),
        (b"fLaC\x00\x00\x00\x22", "flac"),
        (b"OggS\x00\x02", "ogg"),
        (b"\x1a\x45\xdf\xa3\x9f\x42\x86", "webm"),
        (b"\x00\x00\x00\x20ftypM4A ", "m4a"),
        (b"ID3\x04\x00", "mp3"),
        (b"\xff\xfb\x90\x64", "mp3"),
        (b"\xff\xe0\x00", None),
        (b"%PDF-1.7", None),
        (b"", None),
    ],
)
def test_audio_formats_are_recognised_by_their_first_bytes(head: bytes, kind: str | None) -> None:
    assert sniff_audio(head) == kind


def test_transcripts_render_in_every_format() -> None:
    assert msgspec.json.decode(render_transcript(RESULT, "json")[0]) == {
        "text": "Hello there. General Kenobi.",
        "usage": {"type": "duration", "seconds": 3},
    }
    verbose = msgspec.json.decode(render_transcript(RESULT, "verbose_json")[0])
    assert verbose["task"] == "transcribe" and len(verbose["segments"]) == 2
    text, media = render_transcript(RESULT, "text")
    assert text == b"Hello there. General Kenobi.\n" and media.startswith("text/plain")
    assert render_transcript(RESULT, "srt")[0].decode() == (
        "1\n00:00:00,000 --> 00:00:01,500\nHello there.\n\n"
        "2\n00:00:01,500 --> 01:01:01,042\nGeneral Kenobi.\n\n"
    )
    assert render_transcript(RESULT, "vtt")[0].decode() == (
        "WEBVTT\n\n00:00:00.000 --> 00:00:01.500\nHello there.\n\n"
        "00:00:01.500 --> 01:01:01.042\nGeneral Kenobi.\n\n"
    )
    bare = render_transcript({"text": "hi", "duration": 2.0}, "srt")[0].decode()
    assert bare == "1\n00:00:00,000 --> 00:00:02,000\nhi\n\n"


def test_sizes_and_image_requests_are_checked() -> None:
    assert parse_size("1024x768") == (1024, 768)
    assert parse_size("auto") is None and parse_size(None) is None
    with pytest.raises(ValueError, match="1024x1024"):
        parse_size("big")
    with pytest.raises(msgspec.ValidationError, match="width"):
        msgspec.json.decode(b'{"prompt":"x","width":5}', type=ImageRequest)
    with pytest.raises(msgspec.ValidationError, match="prompt"):
        msgspec.json.decode(b'{"prompt":" "}', type=ImageRequest)


def test_node_error_messages_are_read_in_any_shape() -> None:
    assert upstream_error_message(b'{"error":{"message":"bad audio"}}', 400) == "bad audio"
    assert upstream_error_message(b'{"error":"no model"}', 404) == "no model"
    assert upstream_error_message(b'{"detail":"Not Found"}', 404) == "Not Found"
    assert upstream_error_message(b"", 502) == "HTTP 502"
