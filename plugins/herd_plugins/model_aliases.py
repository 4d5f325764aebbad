"""Model aliases from YAML ``routing.aliases``: the built-in resolver, run last."""

from __future__ import annotations

from typing import Any

from herd import hookimpl
from herd.names import normalize_model_name


@hookimpl(trylast=True)
def herd_resolve_model(model: str, api: str, settings: Any) -> str | None:
    aliases = settings.routing.aliases
    if not aliases:
        return None
    return aliases.get(model) or _normalized(aliases).get(normalize_model_name(model))


def _normalized(aliases: dict[str, str]) -> dict[str, str]:
    return {normalize_model_name(k): v for k, v in aliases.items()}
