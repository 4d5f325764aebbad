"""Emulated nodes with image and speech-to-text services, and audio to send them."""

from __future__ import annotations

import io
import math
import struct
import wave
from typing import Any

from herd_sim.images import IMAGE_MODEL
from herd_sim.transcribe import TRANSCRIBE_MODEL

from tests.conftest import emulated

WORKLOADS_ON = {"transcription": True, "image_generation": True}


def workload_sim(make_sim: Any, name: str, **config: Any) -> Any:
    """An emulated node with a chat model, an image model and a transcription model."""
    models = [emulated("llama3.2:3b"), IMAGE_MODEL, TRANSCRIBE_MODEL]
    return make_sim(name=name, models=config.pop("models", models), **config)


def node_with(sim: Any, *, stt: bool = True, image: bool = True, **extra: Any) -> dict[str, Any]:
    """The node's YAML entry: its Ollama plus the services on the same emulator."""
    services = []
    if stt:
        services.append(
            {
                "type": "openai-compat",
                "url": sim.url,
                "models": [TRANSCRIBE_MODEL.name],
                "capabilities": ["transcribe"],
            }
        )
    if image:
        services.append(
            {
                "type": "openai-compat",
                "url": sim.url,
                "models": [IMAGE_MODEL.name],
                "capabilities": ["image"],
            }
        )
    return {"name": sim.name, "url": sim.url, "services": services, **extra}


def tone_wav(seconds: float = 1.0, hz: float = 440.0, rate: int = 16_000) -> bytes:
    """A mono 16-bit WAV of a sine tone (different tones give different files)."""
    frames = b"".join(
        struct.pack("<h", int(12_000 * math.sin(2 * math.pi * hz * i / rate)))
        for i in range(int(seconds * rate))
    )
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(frames)
    return buffer.getvalue()


def capture_traces(router: Any) -> list[Any]:
    """Every trace the router finishes from now on."""
    traces: list[Any] = []
    finish = router.gateway.finish

    def keep(trace: Any) -> None:
        traces.append(trace)
        finish(trace)

    router.gateway.finish = keep
    return traces
