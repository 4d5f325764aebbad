"""Loading the router's configuration: YAML < ``HERD_<KEY>`` environment < flags.

Every key has a default, so herd starts with no file at all. An unknown key or a wrong
type is a :class:`ConfigError` that names the key, its line in the file and what the key
means. The schema itself is :mod:`herd.settings`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec
import yaml

from herd._engine.config_errors import explain_validation_error
from herd.settings import Settings

__all__ = ["ConfigError", "load_settings"]


class ConfigError(Exception):
    """A configuration problem, with a message meant for the person who wrote the file."""


ENV_PREFIX = "HERD_"
_NOT_SETTINGS = {"HERD_DISABLE_PLUGINS", "HERD_CONFIG"}
# herd-node's own variables; the router shares only the node token with it.
_AGENT_PREFIX = "HERD_NODE_"


def load_settings(
    path: str | os.PathLike[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Read, merge and validate the configuration.

    Args:
        path: The YAML file, or None for defaults only.
        env: Environment to read ``HERD_*`` overrides from (default ``os.environ``).
        overrides: Values that win over everything (CLI flags), as top-level keys.

    Returns:
        The validated settings.

    Raises:
        ConfigError: naming the key, its line and its meaning.

    Example:
        >>> load_settings(None, env={"HERD_PORT": "8080"}).port
        8080
    """
    env = os.environ if env is None else env
    raw: dict[str, Any] = {}
    text = ""
    source = "<defaults>"
    if path is not None:
        source = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read config file {source}: {exc.strerror}") from None
        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{source}: not valid YAML: {exc}") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{source}: the top level must be a mapping of keys to values")
        raw = loaded
    for key, value in sorted(env.items()):
        if not key.startswith(ENV_PREFIX) or key in _NOT_SETTINGS:
            continue
        if key.startswith(_AGENT_PREFIX):
            if key == "HERD_NODE_TOKEN" and value:
                _set_path(raw, ["auth", "node_token"], value)  # a string, never YAML-parsed
            continue
        dotted = key[len(ENV_PREFIX) :].lower().split("__")
        _set_path(raw, dotted, _parse_env_value(key, value))
    for key, value in (overrides or {}).items():
        if value is not None:
            raw[key] = value
    try:
        return msgspec.convert(raw, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(explain_validation_error(str(exc), source, text, Settings)) from None


def _parse_env_value(key: str, value: str) -> Any:
    try:
        return yaml.safe_load(value) if value.strip() else ""
    except yaml.YAMLError:
        return value


def _set_path(target: dict[str, Any], dotted: list[str], value: Any) -> None:
    for part in dotted[:-1]:
        nxt = target.get(part)
        if not isinstance(nxt, dict):
            nxt = {}
            target[part] = nxt
        target = nxt
    target[dotted[-1]] = value
