"""``GET /v1/models`` and ``GET /v1/models/{model}``: the models of the whole fleet."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, get
from litestar.params import FromPath

from herd._engine.gateway import Gateway
from herd._engine.routes.common import JSON, gateway_of
from herd.errors import HerdError
from herd.interfaces import ModelEntry
from herd.names import normalize_model_name
from herd.protocol.openai import Model, ModelList
from herd.protocol.openai_replies import unix_time

__all__ = ["ROUTES"]

_encode = msgspec.json.encode


def _fleet_models(gateway: Gateway) -> dict[str, ModelEntry]:
    """Every model on an online node (its own and its services'), by normalised name."""
    entries: dict[str, ModelEntry] = {}
    for node in gateway.fleet.nodes.values():
        view = node.view
        if view.status != "online":
            continue
        for key, entry in view.models.items():
            entries.setdefault(key, entry)
        for offered in getattr(view, "service_models", {}).values():
            for key, entry in offered.items():
                entries.setdefault(key, entry)
    return entries


def _model(name: str, entry: ModelEntry, owner: str | None = None) -> Model:
    modified = entry.raw.get("modified_at")
    created = unix_time(modified) if isinstance(modified, str) and modified else 0
    namespace = entry.name.rsplit("/", 1)[0] if "/" in entry.name else "library"
    return Model(id=name, created=created, owned_by=owner or namespace)


def _aliases(gateway: Gateway, entries: dict[str, ModelEntry]) -> dict[str, ModelEntry]:
    """YAML aliases whose target some online node has, by the alias as written."""
    out = {}
    for alias, target in gateway.settings.routing.aliases.items():
        entry = entries.get(normalize_model_name(target))
        if entry is not None and normalize_model_name(alias) not in entries:
            out[alias] = entry
    return out


@get("/v1/models", status_code=200)
async def list_models(request: Request[Any, Any, Any]) -> Response[bytes]:
    """The union of the online nodes' models (each once), plus the aliases that resolve."""
    gateway = gateway_of(request)
    entries = _fleet_models(gateway)
    data = [_model(entry.name, entry) for entry in entries.values()]
    data += [_model(alias, entry, "herd") for alias, entry in _aliases(gateway, entries).items()]
    data.sort(key=lambda m: m.id)
    return Response(_encode(ModelList(data=data)), media_type=JSON)


@get("/v1/models/{model:path}", status_code=200)
async def retrieve_model(request: Request[Any, Any, Any], model: FromPath[str]) -> Response[bytes]:
    """One model by name (namespaced names such as ``user/model:tag`` work), or 404."""
    gateway = gateway_of(request)
    name = model.lstrip("/")
    entries = _fleet_models(gateway)
    entry = entries.get(normalize_model_name(name))
    if entry is not None:
        return Response(_encode(_model(entry.name, entry)), media_type=JSON)
    alias = _aliases(gateway, entries).get(name) or entries.get(
        gateway.resolve_model(name, "openai")
    )
    if alias is not None:
        return Response(_encode(_model(name, alias, "herd")), media_type=JSON)
    raise HerdError(
        404,
        f"The model `{name}` does not exist or you do not have access to it.",
        code="model_not_found",
        param="model",
    )


ROUTES = [list_models, retrieve_model]
