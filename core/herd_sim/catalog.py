"""Models on the emulated disk, the pullable registry, and how tags/show describe them."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import msgspec

from herd_sim.models import EmulatedModel
from herd_sim.names import ModelName, model_key
from herd_sim.wire import rfc3339

_PARAMETER_SIZE = re.compile(r"\s*([0-9]*\.?[0-9]+)\s*([KMBT]?)\s*", re.IGNORECASE)
_PARAMETER_SCALE = {"": 1, "K": 10**3, "M": 10**6, "B": 10**9, "T": 10**12}
_SMALL_LAYERS = (("template", 1_429), ("params", 96), ("license", 7_711))
_CHATML_TEMPLATE = (
    "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n"
    "{{ end }}<|im_start|>assistant\n"
)
_LLAMA_TEMPLATE = (
    "{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n"
    "{{ .Content }}<|eot_id|>{{ end }}<|start_header_id|>assistant<|end_header_id|>\n\n"
)
_CHATML_STOPS = 'stop "<|im_start|>"\nstop "<|im_end|>"'
_LLAMA_STOPS = 'stop "<|start_header_id|>"\nstop "<|end_header_id|>"\nstop "<|eot_id|>"'


@dataclass
class DiskModel:
    """A model present on the emulated disk under one name."""

    model: EmulatedModel
    name: ModelName
    modified_at: datetime

    @property
    def key(self) -> str:
        return self.name.key

    @property
    def display(self) -> str:
        return self.name.display


@dataclass(frozen=True)
class BlobLayer:
    """One blob of a model's manifest, as ``/api/pull`` reports it."""

    digest: str
    size: int


class Catalog:
    """The emulated ``~/.ollama/models``: lookups, copy, delete and pull targets."""

    def __init__(self, models: Iterable[EmulatedModel], registry: Iterable[EmulatedModel]) -> None:
        now = datetime.now().astimezone()
        self._disk: dict[str, DiskModel] = {}
        # Config order is newest first, so /api/tags lists models the way they were written.
        for age, model in enumerate(models):
            self._store(model, ModelName.parse(model.name), now - timedelta(minutes=age))
        # The models on disk at the start came from a registry too: deleted, they can be
        # pulled back (as on Ollama), so `herd delete` then `herd pull` works on the emulator.
        self._registry = {model_key(model.name): model for model in (*models, *registry)}

    def find(self, name: str) -> DiskModel | None:
        """The disk model ``name`` refers to (case-insensitive, ``:latest`` implied)."""
        return self._disk.get(model_key(name))

    def listing(self) -> list[DiskModel]:
        """Every disk model, newest ``modified_at`` first."""
        return sorted(self._disk.values(), key=lambda entry: entry.modified_at, reverse=True)

    def registry_model(self, name: str) -> EmulatedModel | None:
        """The pullable model called ``name``, whether or not it is on disk."""
        return self._registry.get(model_key(name))

    def add(self, model: EmulatedModel) -> DiskModel:
        """Put ``model`` on disk (a finished pull), replacing any model of that name."""
        return self._store(model, ModelName.parse(model.name), datetime.now().astimezone())

    def copy(self, source: DiskModel, destination: str) -> DiskModel:
        """Copy ``source`` to a new name; the manifest (and so the digest) is shared."""
        name = ModelName.parse(destination)
        model = msgspec.structs.replace(source.model, name=name.display)
        return self._store(model, name, datetime.now().astimezone())

    def delete(self, name: str) -> DiskModel | None:
        """Remove ``name`` from disk; the removed entry, or ``None`` when absent."""
        return self._disk.pop(model_key(name), None)

    def _store(self, model: EmulatedModel, name: ModelName, modified_at: datetime) -> DiskModel:
        entry = DiskModel(model=model, name=name, modified_at=modified_at)
        self._disk[name.key] = entry
        return entry


def model_details(model: EmulatedModel) -> dict[str, Any]:
    """The ``details`` object of tags, ps and show."""
    return {
        "parent_model": "",
        "format": model.format,
        "family": model.family,
        "families": [model.family],
        "parameter_size": model.parameter_size,
        "quantization_level": model.quantization_level,
    }


def tags_entry(entry: DiskModel) -> dict[str, Any]:
    """One ``/api/tags`` model."""
    return {
        "name": entry.display,
        "model": entry.display,
        "modified_at": rfc3339(entry.modified_at),
        "size": entry.model.size,
        "digest": entry.model.digest,
        "details": model_details(entry.model),
        "capabilities": list(entry.model.capabilities),
    }


def parameter_count(parameter_size: str) -> int:
    """``"3.2B"`` -> 3200000000; 0 when unparseable."""
    match = _PARAMETER_SIZE.fullmatch(parameter_size)
    if match is None:
        return 0
    return int(float(match.group(1)) * _PARAMETER_SCALE[match.group(2).upper()])


def show_response(entry: DiskModel) -> dict[str, Any]:
    """The ``/api/show`` body for a disk model."""
    model = entry.model
    template, parameters = _template_and_parameters(model)
    model_info: dict[str, Any] = {
        "general.architecture": model.family,
        "general.parameter_count": parameter_count(model.parameter_size),
        "general.quantization_version": 2,
        f"{model.family}.context_length": model.context_length,
        f"{model.family}.embedding_length": model.embedding_length,
    }
    body: dict[str, Any] = {
        "modelfile": _modelfile(entry, template, parameters),
        "parameters": parameters,
        "template": template,
        "details": model_details(model),
        "model_info": model_info,
        "capabilities": list(model.capabilities),
        "modified_at": rfc3339(entry.modified_at),
    }
    if model.has("vision"):
        body["projector_info"] = {"clip.has_vision_encoder": True}
    return body


def _template_and_parameters(model: EmulatedModel) -> tuple[str, str]:
    if model.has("embedding") and not model.has("completion"):
        return "{{ .Prompt }}", f"num_ctx {model.context_length}"
    if model.family.startswith("qwen"):
        return _CHATML_TEMPLATE, _CHATML_STOPS
    return _LLAMA_TEMPLATE, _LLAMA_STOPS


def _modelfile(entry: DiskModel, template: str, parameters: str) -> str:
    lines = [
        '# Modelfile generated by "ollama show"',
        "# To build a new Modelfile based on this, replace FROM with:",
        f"# FROM {entry.display}",
        "",
        f"FROM /root/.ollama/models/blobs/sha256-{blob_layers(entry.model)[0].digest}",
        f'TEMPLATE """{template}"""',
        *(f"PARAMETER {line}" for line in parameters.splitlines()),
    ]
    return "\n".join(lines) + "\n"


def blob_layers(model: EmulatedModel) -> list[BlobLayer]:
    """The blobs a pull of ``model`` downloads; their sizes add up to ``model.size``."""
    small_total = sum(size for _, size in _SMALL_LAYERS)
    kinds = [("model", model.size)]
    if model.size > 2 * small_total:
        kinds = [("model", model.size - small_total), *_SMALL_LAYERS]
    return [
        BlobLayer(hashlib.sha256(f"{model.digest}/{kind}".encode()).hexdigest(), size)
        for kind, size in kinds
    ]
