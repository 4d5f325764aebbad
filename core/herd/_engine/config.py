"""Loading the router's configuration: YAML < ``HERD_<KEY>`` environment < flags.

Every key has a default, so herd starts with no file at all. An unknown key or a wrong
type is a :class:`ConfigError` that names the key and where it came from: its line in the
file, the environment variable or the flag. The schema itself is :mod:`herd.settings`.

The environment is shared with everything else on the machine (and, in Kubernetes, with
the service links of a Service named ``herd``), so a ``HERD_*`` variable that names no
setting is ignored with a warning instead of stopping the router.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import msgspec
import yaml

from herd._engine.config_errors import (
    error_keys,
    explain_validation_error,
    field_type_at,
    line_of,
    setting_env_names,
)
from herd._engine.config_shorthand import expand_nodes, nodes_env_value
from herd.settings import Settings

__all__ = ["ConfigError", "LoadedConfig", "check_backends", "load_config", "load_settings"]

log = logging.getLogger("herd.config")


class ConfigError(Exception):
    """A configuration problem, with a message meant for the person who wrote the file."""


ENV_PREFIX = "HERD_"
#: herd's own variables that are not settings (the operator CLI's ones included).
NOT_SETTINGS = frozenset(
    {"HERD_CONFIG", "HERD_DISABLE_PLUGINS", "HERD_ROUTER", "HERD_ADMIN_KEY", "HERD_API_KEY"}
)
# herd-node's own variables; the router shares only the node token with it.
_AGENT_PREFIX = "HERD_NODE_"
# What Kubernetes injects into every pod for a Service named `herd` (service links).
_KUBERNETES_NAME = re.compile(
    r"^HERD_(SERVICE_HOST|SERVICE_PORT(_[A-Z0-9_]+)?|PORT_\d+_(TCP|UDP|SCTP)(_(PROTO|PORT|ADDR))?)$"
)
_KUBERNETES_PORT_VALUE = re.compile(r"^(tcp|udp|sctp)://", re.IGNORECASE)
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


@dataclass
class LoadedConfig:
    """The settings and where every value came from.

    Attributes:
        settings: The validated settings.
        path: The YAML file read, or None.
        text: The file's text ("" without a file).
        env_paths: Key path -> the environment variable that set it.
        flag_paths: Key path -> the flag that set it.
        ignored: ``HERD_*`` variables that name no setting (warned about once).
        kubernetes: Kubernetes service-link variables, skipped quietly.
    """

    settings: Settings
    path: str | None = None
    text: str = ""
    file_raw: dict[str, Any] = field(default_factory=dict)
    env_paths: dict[tuple[str, ...], str] = field(default_factory=dict)
    flag_paths: dict[tuple[str, ...], str] = field(default_factory=dict)
    ignored: list[str] = field(default_factory=list)
    kubernetes: list[str] = field(default_factory=list)

    def origin(self, keys: list[str]) -> str:
        """Where the value at ``keys`` (e.g. ``["nodes", "[0]", "url"]``) came from."""
        names = tuple(k for k in keys if not k.startswith("["))
        for paths in (self.flag_paths, self.env_paths):
            for depth in range(len(names), 0, -1):
                source = paths.get(names[:depth])
                if source:
                    return source
        if self.path is not None and _in_tree(self.file_raw, keys):
            line = line_of(self.text, keys)
            return f"file {self.path}:{line}" if line else f"file {self.path}"
        return "default"

    def warning(self) -> str:
        """One line about ignored variables, or "" when there are none."""
        if not self.ignored:
            return ""
        known = setting_env_names(Settings)
        named = []
        for name in self.ignored:
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.85)
            named.append(f"{name} (did you mean {close[0]}?)" if close else name)
        return (
            "ignoring environment variables that name no herd setting: "
            + ", ".join(named)
            + " (settings are HERD_<KEY>, nested keys joined by __, e.g. HERD_ROUTING__MAX_RETRIES)"
        )


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
        ConfigError: naming the key, where it came from and its meaning.

    Example:
        >>> load_settings(None, env={"HERD_PORT": "8080"}).port
        8080
    """
    loaded = load_config(path, env=env, overrides=overrides)
    if loaded.ignored:
        log.warning("%s", loaded.warning())
    return loaded.settings


def load_config(
    path: str | os.PathLike[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> LoadedConfig:
    """Like :func:`load_settings`, keeping where every value came from."""
    env = os.environ if env is None else env
    loaded = LoadedConfig(settings=Settings())
    raw: dict[str, Any] = {}
    if path is not None:
        loaded.path = str(path)
        loaded.text = _read(loaded.path)
        raw = _parse_file(loaded.path, loaded.text)
        if "nodes" in raw:  # nodes given as URLs, as maps (known to come from the file)
            raw["nodes"] = expand_nodes(raw["nodes"])
        loaded.file_raw = _copy_tree(raw)
    _apply_env(raw, env, loaded)
    for key, value in (overrides or {}).items():
        if value is not None:
            raw[key] = value
            loaded.flag_paths[(key,)] = f"flag --{key.replace('_', '-')}"
    if isinstance(raw.get("log_level"), str):
        raw["log_level"] = raw["log_level"].strip().lower()
    try:
        loaded.settings = msgspec.convert(raw, Settings, strict=False)
    except msgspec.ValidationError as exc:
        keys = error_keys(str(exc))
        source, text = _source_of(loaded, keys)
        raise ConfigError(explain_validation_error(str(exc), source, text, Settings)) from None
    _check_values(loaded)
    return loaded


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"cannot read config file {path}: it is not UTF-8 text") from None


def _parse_file(source: str, text: str) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where, what = _yaml_problem(exc)
        at = f", {where}" if where else ""
        raise ConfigError(f"config error in {source}{at}: not valid YAML: {what}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of keys to values")
    return loaded


def _apply_env(raw: dict[str, Any], env: Mapping[str, str], loaded: LoadedConfig) -> None:
    for key, value in sorted(env.items()):
        if not key.startswith(ENV_PREFIX) or key in NOT_SETTINGS:
            continue
        if key.startswith(_AGENT_PREFIX):
            if key == "HERD_NODE_TOKEN" and value:
                _set_path(raw, ["auth", "node_token"], value)  # a string, never YAML-parsed
                loaded.env_paths[("auth", "node_token")] = "env HERD_NODE_TOKEN"
            continue
        if _KUBERNETES_NAME.match(key) or (
            key == "HERD_PORT" and _KUBERNETES_PORT_VALUE.match(value.strip())
        ):
            loaded.kubernetes.append(key)
            continue
        dotted = key[len(ENV_PREFIX) :].lower().split("__")
        found, target = field_type_at(Settings, dotted)
        if not found:
            loaded.ignored.append(key)
            continue
        # A string setting takes the value as written (a key may start with `*` or `!`);
        # anything else is YAML, so lists and maps work and a typo is an error, not a string.
        if dotted == ["nodes"]:
            parsed: Any = expand_nodes(nodes_env_value(value, partial(_parse_env_value, key)))
        else:
            parsed = value if target is str else _parse_env_value(key, value)
        _set_path(raw, dotted, parsed)
        loaded.env_paths[tuple(dotted)] = f"env {key}"


def _parse_env_value(key: str, value: str) -> Any:
    if not value.strip():
        return ""
    try:
        return yaml.safe_load(value)
    except yaml.YAMLError as exc:
        where, what = _yaml_problem(exc, one_line=True)
        at = f" at {where}" if where else ""
        raise ConfigError(
            f"config error in environment variable {key}: not valid YAML: {what}{at}"
        ) from None


def _check_values(loaded: LoadedConfig) -> None:
    """Checks msgspec's types cannot say: the log level, node names, and node URLs."""
    settings = loaded.settings
    if settings.log_level not in LOG_LEVELS:
        _fail(
            loaded,
            ["log_level"],
            f"{settings.log_level!r} is not a log level (use one of {', '.join(LOG_LEVELS)})",
        )
    named: set[str] = set()
    for i, node in enumerate(settings.nodes):
        # Found here, with the line, rather than when the fleet starts (after the bind)
        if not node.name.strip():
            _fail(loaded, ["nodes", f"[{i}]", "name"], "a node needs a name")
        if node.name in named:
            _fail(loaded, ["nodes", f"[{i}]", "name"], f"two nodes are named {node.name!r}")
        named.add(node.name)
        problem = url_problem(node.url)
        if problem:
            _fail(loaded, ["nodes", f"[{i}]", "url"], problem)
        for j, service in enumerate(node.services):
            problem = url_problem(service.url)
            if problem:
                _fail(loaded, ["nodes", f"[{i}]", "services", f"[{j}]", "url"], problem)


def check_backends(loaded: LoadedConfig, backends: Mapping[str, Any]) -> None:
    """Every node's and service's ``type`` is a backend the plugins registered, and its
    ``options`` fit that backend's ``Config`` (known once the plugins are loaded).

    Raises:
        ConfigError: naming the key and its line, as for any other configuration error.
    """
    known = ", ".join(sorted(backends)) or "none"
    for i, node in enumerate(loaded.settings.nodes):
        where = ["nodes", f"[{i}]"]
        parts = [(where, node.type, node.options)] + [
            ([*where, "services", f"[{j}]"], service.type, service.options)
            for j, service in enumerate(node.services)
        ]
        for keys, kind, options in parts:
            cls = backends.get(kind)
            if cls is None:
                _fail(loaded, [*keys, "type"], f"unknown type {kind!r} (known: {known})")
            try:
                msgspec.convert(options, cls.Config, strict=False)
            except msgspec.ValidationError as exc:
                _fail(loaded, [*keys, "options"], f"{exc} (options of type {kind!r})")


def url_problem(url: str) -> str:
    """Why ``url`` is not an ``http(s)://host[:port]`` base URL, or "" when it is."""
    try:
        parts = urlsplit(url.strip())
    except ValueError as exc:  # e.g. an unclosed [ of an IPv6 address
        return f"{url!r} is not a URL: {exc}"
    if not parts.scheme or not parts.netloc:
        example = url.strip() if url.strip() and "://" not in url else "HOST:11434"
        return f"{url!r} is not a URL: it needs a scheme and a host, e.g. http://{example}"
    if parts.scheme not in ("http", "https"):
        return f"{url!r}: the scheme must be http or https, not {parts.scheme}"
    try:
        parts.port  # noqa: B018 -- raises on a port that is not a number
    except ValueError:
        return f"{url!r}: the port is not a number"
    if not parts.hostname:
        return f"{url!r}: the URL has no host"
    return ""


def _fail(loaded: LoadedConfig, keys: list[str], what: str) -> None:
    dotted = "".join(k if k.startswith("[") else f".{k}" for k in keys).lstrip(".")
    source, text = _source_of(loaded, keys)
    line = line_of(text, keys) if text else None
    location = f"{source}, line {line}" if line else source
    raise ConfigError(f"config error in {location}: {dotted}: {what}")


def _source_of(loaded: LoadedConfig, keys: list[str]) -> tuple[str, str]:
    """The name of what set ``keys`` and the text to find its line in ("" if none)."""
    origin = loaded.origin(keys)
    if origin.startswith("env "):
        return f"environment variable {origin[4:]}", ""
    if origin.startswith("flag "):
        return origin, ""
    # A check on a whole section (two API keys with one name) fails at the section; blame
    # the variables and flags that set something inside it.
    names = tuple(k for k in keys if not k.startswith("["))
    inside = sorted(
        source.replace("env ", "environment variable ", 1)
        for path, source in {**loaded.env_paths, **loaded.flag_paths}.items()
        if path[: len(names)] == names
    )
    if inside:
        also = ", ".join(inside)
        if loaded.path is not None and _in_tree(loaded.file_raw, keys):
            return f"{loaded.path} (with {also})", loaded.text
        return also, ""
    if origin == "default" and loaded.path is None:
        return "<defaults>", ""
    return loaded.path or "<defaults>", loaded.text


def _in_tree(tree: Any, keys: list[str]) -> bool:
    node = tree
    for key in keys:
        if key.startswith("["):
            index = int(key.strip("[]"))
            if not isinstance(node, list) or index >= len(node):
                return False
            node = node[index]
        elif isinstance(node, dict) and key in node:
            node = node[key]
        else:
            return False
    return True


def _copy_tree(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy_tree(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy_tree(v) for v in value]
    return value


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())


def _yaml_problem(exc: yaml.YAMLError, one_line: bool = False) -> tuple[str, str]:
    """Where a YAML error is (``line 3, column 5``) and what it is, without PyYAML's
    ``in "<unicode string>"`` and source snippets, which do not fit on one line."""
    if not isinstance(exc, yaml.MarkedYAMLError) or not exc.problem:
        return "", _one_line(exc)
    mark, context = exc.problem_mark, exc.context_mark
    where = ""
    if mark is not None:
        where = (
            f"column {mark.column + 1}"
            if one_line
            else f"line {mark.line + 1}, column {mark.column + 1}"
        )
    what = exc.problem
    if exc.context:
        started = f" from line {context.line + 1}" if context is not None and not one_line else ""
        what += f" ({exc.context}{started})"
    return where, what


def _set_path(target: dict[str, Any], dotted: list[str], value: Any) -> None:
    for part in dotted[:-1]:
        nxt = target.get(part)
        if not isinstance(nxt, dict):
            nxt = {}
            target[part] = nxt
        target = nxt
    target[dotted[-1]] = value
