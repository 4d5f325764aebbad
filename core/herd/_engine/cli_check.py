"""``herd check-config [FILE]``: validate the configuration and show where each value came from.

Every setting is printed on its own line as ``key: value  # source``, where the source is
``default``, ``file PATH:LINE``, ``env VARIABLE`` or ``flag --NAME``. Secrets (tokens, keys,
passwords) are printed as ``<redacted>``. The plugins are loaded and their options checked
too, so a configuration that passes here starts (ports and data directories aside).
"""

from __future__ import annotations

import sys
from typing import Any

import msgspec

from herd._engine.config import ConfigError, LoadedConfig, check_backends, load_config
from herd._engine.plugins import PluginLoadError
from herd.net import without_credentials

__all__ = ["check_config", "describe"]

REDACTED = "<redacted>"
_SECRET_WORDS = ("token", "secret", "password", "passwd", "api_key", "admin_key")


def check_config(argv: list[str]) -> int:
    """Run ``herd check-config``; 0 when the configuration is valid, 2 when not."""
    from herd._engine.cli_args import flag_overrides, serve_parser

    parser = serve_parser("herd check-config")
    parser.add_argument("file", nargs="?", help="YAML file (default: --config or HERD_CONFIG)")
    args = parser.parse_args(argv)
    path = args.file or args.config
    try:
        loaded = load_config(path, overrides=flag_overrides(args))
        _load_plugins(loaded)
    except (ConfigError, PluginLoadError, ValueError) as exc:
        print(f"herd: {exc}", file=sys.stderr)
        return 2
    if loaded.ignored:
        print(f"herd: warning: {loaded.warning()}", file=sys.stderr)
    if loaded.kubernetes:
        skipped = ", ".join(loaded.kubernetes)
        print(f"# skipped Kubernetes service variables: {skipped}", file=sys.stderr)
    for line in describe(loaded):
        print(line)
    where = f"{path}" if path else "defaults and environment"
    print(f"# configuration is valid ({where})", file=sys.stderr)
    return 0


def _load_plugins(loaded: LoadedConfig) -> None:
    """Build the app (not start it): loads plugins, checks signal, policy and sink options."""
    from herd._engine.app import create_app

    gateway = create_app(loaded.settings).state.gateway
    check_backends(loaded, gateway.backend_classes)
    options = loaded.settings.plugins.options
    for name, cls in gateway.sink_classes.items():  # sinks read their options at start
        try:
            msgspec.convert(options.get(name) or {}, cls.Config, strict=False)
        except msgspec.ValidationError as exc:
            raise PluginLoadError(f"plugins.options.{name}: {exc}") from None


_ALIGN_AT = 60


def describe(loaded: LoadedConfig) -> list[str]:
    """``key: value  # source`` for every setting, secrets redacted."""
    rows: list[tuple[str, str, str]] = []
    _flatten(msgspec.to_builtins(loaded.settings), [], rows, loaded)
    # sources line up; a value too long for that (a list of origins) just comes first
    width = min(max((len(f"{k}: {v}") for k, v, _ in rows), default=0), _ALIGN_AT)
    return [f"{f'{k}: {v}':<{width}}  # {source}" for k, v, source in rows]


def _flatten(value: Any, keys: list[str], rows: list[tuple[str, str, str]], loaded: Any) -> None:
    if isinstance(value, dict) and value and (not keys or _is_section(loaded, keys)):
        for key, inner in value.items():
            _flatten(inner, [*keys, str(key)], rows, loaded)
        return
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        for i, inner in enumerate(value):
            _flatten(inner, [*keys, f"[{i}]"], rows, loaded)
        return
    rows.append((_dotted(keys), _show(keys, value), loaded.origin(keys)))


def _is_section(loaded: Any, keys: list[str]) -> bool:
    """A struct (or a list item's struct) is opened; free-form maps are shown whole."""
    from herd._engine.config_errors import field_type_at

    names = [k for k in keys if not k.startswith("[")]
    found, target = field_type_at(type(loaded.settings), names)
    if keys[-1].startswith("["):
        return True
    if not found:
        return False
    return isinstance(target, type) and issubclass(target, msgspec.Struct)


def _dotted(keys: list[str]) -> str:
    return "".join(k if k.startswith("[") else f".{k}" for k in keys).lstrip(".")


def _show(keys: list[str], value: Any) -> str:
    name = keys[-1] if keys else ""
    if value not in ("", None) and (name == "key" or any(w in name for w in _SECRET_WORDS)):
        return REDACTED
    if name.endswith("url") and isinstance(value, str):  # a node behind a proxy's password
        value = without_credentials(value)
    return _redact_tree(value) if isinstance(value, dict | list) else _scalar(value)


def _redact_tree(value: Any) -> str:
    def walk(item: Any) -> Any:
        if isinstance(item, dict):
            return {
                k: REDACTED if any(w in str(k).lower() for w in _SECRET_WORDS) else walk(v)
                for k, v in item.items()
            }
        if isinstance(item, list):
            return [walk(v) for v in item]
        return item

    return msgspec.json.encode(walk(value)).decode()


def _scalar(value: Any) -> str:
    if isinstance(value, str):
        return msgspec.json.encode(value).decode()
    if isinstance(value, bool):
        return "true" if value else "false"
    return "null" if value is None else str(value)
