"""The image and transcription endpoints as clients see them (over emulated nodes)."""

from __future__ import annotations

import base64

import httpx
import pytest
from herd_sim.images import IMAGE_MODEL, expected_image
from herd_sim.transcribe import TRANSCRIBE_MODEL, expected_transcript
from openai import BadRequestError, OpenAI

from tests.conftest import emulated
from tests.core.workload_nodes import (
    WORKLOADS_ON,
    capture_traces,
    node_with,
    tone_wav,
    workload_sim,
)


@pytest.fixture
def router(make_sim, make_router):
    sim = workload_sim(make_sim, "studio")
    return make_router(
        nodes=[node_with(sim)], workloads={**WORKLOADS_ON, "max_audio_bytes": 200_000}
    )


def sdk(router) -> OpenAI:
    return OpenAI(base_url=router.url + "/v1", api_key="unused", max_retries=0)


def test_openai_sdk_generates_real_deterministic_pngs(router) -> None:
    traces = capture_traces(router)
    result = sdk(router).images.generate(
        model=IMAGE_MODEL.name,
        prompt="a red fox in snow",
        size="64x48",
        n=2,
        extra_body={"seed": 7},
    )
    assert len(result.data) == 2
    first, second = (base64.b64decode(item.b64_json) for item in result.data)
    assert first == expected_image(IMAGE_MODEL.name, "a red fox in snow", 64, 48, seed=7)
    assert second == expected_image(IMAGE_MODEL.name, "a red fox in snow", 64, 48, seed=8)
    assert first != second
    assert result.size == "64x48"
    assert traces[-1].kind == "image" and traces[-1].node == "studio"


def test_native_endpoint_answers_a_png_with_herd_headers(router) -> None:
    reply = httpx.post(
        router.url + "/api/generate-image",
        json={"prompt": "a lighthouse at dusk", "width": 96, "height": 64, "seed": 3},
        timeout=30,
    )
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "image/png"
    assert reply.headers["x-herd-node"] == "studio"
    assert reply.headers["x-herd-model"] == IMAGE_MODEL.name
    assert reply.content == expected_image(IMAGE_MODEL.name, "a lighthouse at dusk", 96, 64, 3)
    width, height = int.from_bytes(reply.content[16:20]), int.from_bytes(reply.content[20:24])
    assert (width, height) == (96, 64)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"prompt": "x", "response_format": "url"}, "response_format"),
        ({"prompt": "x", "size": "huge"}, "size"),
        ({"prompt": "x", "n": 11}, None),
        ({"model": IMAGE_MODEL.name}, None),
    ],
)
def test_bad_image_requests_are_400(router, body, param) -> None:
    reply = httpx.post(router.url + "/v1/images/generations", json=body, timeout=30)
    assert reply.status_code == 400, reply.text
    error = reply.json()["error"]
    assert error["type"] == "invalid_request_error"
    if param:
        assert error["param"] == param


def test_sdk_transcribes_in_every_format(router) -> None:
    audio = tone_wav(2.0)
    words = expected_transcript(TRANSCRIBE_MODEL.name, audio)
    client = sdk(router)

    def ask(response_format: str):
        return client.audio.transcriptions.create(
            model=TRANSCRIBE_MODEL.name,
            file=("speech.wav", audio, "audio/wav"),
            response_format=response_format,
        )

    assert ask("json").text == words
    assert ask("text").strip() == words
    verbose = ask("verbose_json")
    assert verbose.text == words and verbose.duration == pytest.approx(2.0)
    assert verbose.segments[0].start == 0.0
    srt = ask("srt")
    assert srt.startswith("1\n00:00:00,000 --> ")
    assert ask("vtt").startswith("WEBVTT\n\n00:00:00.000 --> ")
    raw = client.audio.transcriptions.with_raw_response.create(
        model=TRANSCRIBE_MODEL.name, file=("speech.wav", audio, "audio/wav"), response_format="srt"
    )
    assert raw.headers.get_list("content-type") == ["text/plain; charset=utf-8"]  # one charset


def test_native_transcribe_takes_audio_and_picks_a_model(router) -> None:
    audio = tone_wav(1.0, hz=220)
    reply = httpx.post(
        router.url + "/api/transcribe", files={"audio": ("a.wav", audio, "audio/wav")}, timeout=30
    )
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["model"] == TRANSCRIBE_MODEL.name
    assert body["text"] == expected_transcript(TRANSCRIBE_MODEL.name, audio)
    assert body["duration"] == pytest.approx(1.0)
    assert reply.headers["x-herd-model"] == TRANSCRIBE_MODEL.name


@pytest.mark.parametrize(
    ("content", "status", "words"),
    [
        (b"", 400, "empty"),
        (b"this is not sound at all" * 10, 400, "corrupt"),
        (b"RIFF" + b"\x00" * 300_000, 413, "larger"),
    ],
)
def test_bad_audio_is_refused_before_any_node(router, content, status, words) -> None:
    client = sdk(router)
    with pytest.raises(Exception) as caught:
        client.audio.transcriptions.create(
            model=TRANSCRIBE_MODEL.name, file=("a.wav", content, "audio/wav")
        )
    assert caught.value.status_code == status
    assert words in str(caught.value)


def test_requests_that_are_not_multipart_or_lack_parts_are_400(router) -> None:
    url = router.url + "/v1/audio/transcriptions"
    not_form = httpx.post(url, json={"model": TRANSCRIBE_MODEL.name}, timeout=30)
    assert not_form.status_code == 400
    assert "multipart/form-data" in not_form.json()["error"]["message"]
    no_file = httpx.post(url, data={"model": "m"}, files={"other": ("x", b"1")}, timeout=30)
    assert no_file.status_code == 400 and no_file.json()["error"]["param"] == "file"
    with pytest.raises(BadRequestError, match="model is required"):
        sdk(router).audio.transcriptions.create(model="", file=("a.wav", tone_wav(0.2)))
    bad_format = httpx.post(
        url,
        files={"file": ("a.wav", tone_wav(0.2), "audio/wav")},
        data={"model": TRANSCRIBE_MODEL.name, "response_format": "docx"},
        timeout=30,
    )
    assert bad_format.status_code == 400
    assert bad_format.json()["error"]["param"] == "response_format"


def test_aliases_name_workload_models(make_sim, make_router) -> None:
    sim = workload_sim(make_sim, "studio")
    router = make_router(
        nodes=[node_with(sim)],
        workloads=WORKLOADS_ON,
        routing={"aliases": {"whisper-1": TRANSCRIBE_MODEL.name, "dall-e-3": IMAGE_MODEL.name}},
    )
    client = sdk(router)
    text = client.audio.transcriptions.create(model="whisper-1", file=("a.wav", tone_wav(0.5)))
    assert text.text == expected_transcript(TRANSCRIBE_MODEL.name, tone_wav(0.5))
    image = client.images.generate(model="dall-e-3", prompt="a boat", size="32x32")
    assert base64.b64decode(image.data[0].b64_json) == expected_image(
        IMAGE_MODEL.name, "a boat", 32, 32
    )


def test_a_text_model_on_the_image_endpoint_is_a_400_not_a_503(make_sim, make_router) -> None:
    sim = make_sim(name="text-only", models=[emulated("llama3.2:3b")])
    router = make_router(nodes=[sim], workloads={"image_generation": True})
    reply = httpx.post(
        router.url + "/api/generate-image", json={"model": "llama3.2:3b", "prompt": "a cat"}
    )
    assert reply.status_code == 400
    assert reply.json() == {
        "error": "model 'llama3.2:3b' is not served for image generation by any node "
        "(it is on: text-only)"
    }
    reply = httpx.post(
        router.url + "/v1/images/generations", json={"model": "nope:1b", "prompt": "a cat"}
    )
    assert reply.status_code == 404


def test_word_times_and_streamed_events(router) -> None:
    """timestamp_granularities reach the node and its words come back (only when asked,
    only with verbose_json); stream=true answers OpenAI's transcript events, whose deltas
    add up to the text (the SDK yielded nothing from the JSON it used to get)."""
    audio = tone_wav(2.0)
    words = expected_transcript(TRANSCRIBE_MODEL.name, audio)
    client = sdk(router)
    file = ("speech.wav", audio, "audio/wav")
    timed = client.audio.transcriptions.create(
        model=TRANSCRIBE_MODEL.name,
        file=file,
        response_format="verbose_json",
        timestamp_granularities=["word"],
    )
    assert [w.word for w in timed.words] == words.split()
    assert timed.words[0].start == 0.0 and timed.words[-1].end == pytest.approx(2.0)
    longer = ("speech.wav", tone_wav(5.0), "audio/wav")  # (several segments)
    events = list(
        client.audio.transcriptions.create(model=TRANSCRIBE_MODEL.name, file=longer, stream=True)
    )
    said = expected_transcript(TRANSCRIBE_MODEL.name, longer[1])
    assert [e.type for e in events][-1] == "transcript.text.done" and events[-1].text == said
    assert "".join(e.delta for e in events[:-1]) == said and len(events) > 2
    with pytest.raises(BadRequestError, match="verbose_json"):
        client.audio.transcriptions.create(
            model=TRANSCRIBE_MODEL.name, file=file, timestamp_granularities=["word"]
        )
    url = router.url + "/v1/audio/transcriptions"
    for field, value in (("stream", "maybe"), ("timestamp_granularities[]", "syllable")):
        data = {"model": TRANSCRIBE_MODEL.name, "response_format": "verbose_json", field: value}
        reply = httpx.post(url, files={"file": file}, data=data, timeout=30)
        assert reply.status_code == 400 and field.rstrip("[]") in reply.json()["error"]["param"]
