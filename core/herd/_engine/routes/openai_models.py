"""``GET /v1/models`` and ``GET /v1/models/{model}``: the models of the whole fleet.

In OpenAI's shape, or in Anthropic's for a client that sends ``anthropic-version``
(:mod:`herd.protocol.anthropic_models`): both APIs list models at these paths.
"""

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
from herd.protocol.anthropic_models import ModelPageError, model_info, model_page
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
    if _anthropic(request):
        return Response(_encode(_anthropic_page(request, data)), media_type=JSON)
    data.sort(key=lambda m: m.id)
    return Response(_encode(ModelList(data=data)), media_type=JSON)


def _anthropic(request: Request[Any, Any, Any]) -> bool:
    """An Anthropic client asks (its SDKs always send ``anthropic-version``)."""
    return "anthropic-version" in request.headers


def _anthropic_page(request: Request[Any, Any, Any], data: list[Model]) -> dict[str, Any]:
    query = request.query_params
    limit = query.get("limit")
    try:
        return model_page(
            [(m.id, m.created) for m in data],
            int(limit) if limit is not None else None,
            query.get("after_id"),
            query.get("before_id"),
        )
    except ModelPageError as error:
        raise HerdError(400, str(error), param=error.param) from None
    except ValueError:
        raise HerdError(400, f"limit: {limit!r} is not a number", param="limit") from None


@get("/v1/models/{model:path}", status_code=200)
async def retrieve_model(request: Request[Any, Any, Any], model: FromPath[str]) -> Response[bytes]:
    """One model by name (namespaced names such as ``user/model:tag`` work), or 404."""
    gateway = gateway_of(request)
    name = model.lstrip("/")
    entries = _fleet_models(gateway)
    entry = entries.get(normalize_model_name(name))
    found = _model(entry.name, entry) if entry is not None else None
    if found is None:
        alias = _aliases(gateway, entries).get(name) or entries.get(
            gateway.resolve_model(name, "anthropic" if _anthropic(request) else "openai")
        )
        found = _model(name, alias, "herd") if alias is not None else None
    if found is not None:
        if _anthropic(request):
            return Response(_encode(model_info(found.id, found.created)), media_type=JSON)
        return Response(_encode(found), media_type=JSON)
    raise HerdError(
        404,
        f"The model `{name}` does not exist or you do not have access to it.",
        code="model_not_found",
        param="model",
    )


ROUTES = [list_models, retrieve_model]
