"""Node snapshots, requests and signals for the signal tests: pure data, no I/O."""

from __future__ import annotations

from typing import Any

import msgspec
from herd import InferenceRequest, LoadedModel, ModelEntry, NodeView, Signal

GB = 10**9
MODEL = "qwen2.5:7b"


def make_node(
    name: str = "a",
    *,
    disk: dict[str, float] | None = None,
    loaded: dict[str, int] | None = None,
    in_flight: dict[str, int] | None = None,
    queued: dict[str, int] | None = None,
    num_parallel: int = 4,
    vram_gb: float = 0,
    vram_used_gb: float = 0,
    status: str = "online",
    **fields: Any,
) -> NodeView:
    """A node with models on disk (``{name: size_gb}``, default ``{MODEL: 4.7}``), loaded
    models (``{name: context_length}``, each as big as on disk), requests in flight and
    queued per model, and GPU memory."""
    disk = {MODEL: 4.7} if disk is None else disk
    view = NodeView(
        name=name,
        url=f"http://{name}.invalid:11434",
        status=status,
        capabilities=frozenset({"text", "embed"}),
        num_parallel=num_parallel,
        vram_total=int(vram_gb * GB),
        vram_used=int(vram_used_gb * GB),
        **fields,
    )
    for model, size_gb in disk.items():
        view.models[model] = ModelEntry(name=model, key=model, size=int(size_gb * GB))
    for model, context in (loaded or {}).items():
        size = int(disk.get(model, 1.0) * GB)
        view.loaded[model] = LoadedModel(
            name=model, key=model, size=size, size_vram=size, context_length=context
        )
    for model, count in (in_flight or {}).items():
        view.in_flight_by_model[model] = count
        view.in_flight += count
    view.queued_by_model.update(queued or {})
    return view


def make_request(model: str = MODEL, **fields: Any) -> InferenceRequest:
    return InferenceRequest(
        api="ollama",
        endpoint=fields.pop("endpoint", "chat"),
        kind="text",
        model=model,
        model_key=model,
        body={},
        stream=True,
        **fields,
    )


def make_signal(cls: type[Signal], **config: Any) -> Signal:
    """A signal built the way the router builds it: from its Config, YAML-style."""
    return cls(msgspec.convert(config, cls.Config))


def score_all(signal: Signal, request: InferenceRequest, nodes: list[NodeView]) -> list[float]:
    """What the router does: prepare (rejections are returned), then score every node."""
    signal.prepare(request, nodes)
    return signal.scores(request, nodes)
