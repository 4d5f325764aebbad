"""What an agent's heartbeat reports about its models, in the fleet's own types."""

from __future__ import annotations

from herd.names import normalize_model_name
from herd.node_view import LoadedModel, ModelEntry
from herd.protocol.heartbeat import DiskModel, RunningModel

__all__ = ["loaded_model", "model_entry"]


def model_entry(model: DiskModel) -> ModelEntry:
    """A model on an agent's disk, as the fleet keeps it (``raw`` as ``/api/tags`` has it)."""
    raw = {
        "name": model.name,
        "model": model.name,
        "modified_at": model.modified_at,
        "size": model.size,
        "digest": model.digest,
        "details": model.details,
    }
    if model.capabilities:
        raw["capabilities"] = model.capabilities
    return ModelEntry(
        name=model.name,
        key=normalize_model_name(model.name),
        size=model.size,
        digest=model.digest,
        details=model.details,
        capabilities=list(model.capabilities),
        raw=raw,
    )


def loaded_model(model: RunningModel) -> LoadedModel:
    """A model in an agent's memory, as the fleet keeps it (``raw`` as ``/api/ps`` has it)."""
    raw = {
        "name": model.name,
        "model": model.name,
        "size": model.size,
        "digest": model.digest,
        "details": model.details,
        "expires_at": model.expires_at,
        "size_vram": model.size_vram,
        "context_length": model.context_length,
    }
    return LoadedModel(
        name=model.name,
        key=normalize_model_name(model.name),
        size=model.size,
        size_vram=model.size_vram,
        context_length=model.context_length,
        expires_at=model.expires_at,
        raw=raw,
    )
