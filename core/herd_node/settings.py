"""``herd-node``'s settings: flags beat ``HERD_NODE_*`` variables, which beat its YAML file."""

from __future__ import annotations

import argparse
import os
import socket
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit, urlunsplit

import herd
import msgspec
import yaml
from herd.net import is_loopback_host

__all__ = [
    "AgentSettings",
    "AgentSettingsError",
    "build_parser",
    "check_http_url",
    "is_loopback_host",
    "load_agent_settings",
    "stated_ollama_url",
]

DEFAULT_OLLAMA = "http://127.0.0.1:11434"
ENV_PREFIX = "HERD_NODE_"


def _doc(text: str, **constraints: Any) -> msgspec.Meta:
    return msgspec.Meta(description=text, **constraints)


class AgentSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """Everything ``herd-node`` needs; each key is also a flag and a ``HERD_NODE_<KEY>``."""

    router: Annotated[str, _doc("The router's URL; empty = find it by mDNS.")] = ""
    ollama: Annotated[str, _doc("Where the agent reads the local Ollama.")] = DEFAULT_OLLAMA
    token: Annotated[str, _doc("The router's node token (auth.node_token).")] = ""
    name: Annotated[str, _doc("The node's name; default the host name.")] = ""
    advertise: Annotated[
        str, _doc("The Ollama URL the router should use; default derived from `ollama`.")
    ] = ""
    interval: Annotated[float, _doc("Seconds between heartbeats.", gt=0)] = 5.0
    timeout: Annotated[float, _doc("Seconds a read of Ollama or a heartbeat may take.", gt=0)] = 5.0
    num_parallel: Annotated[int, _doc("Ollama's OLLAMA_NUM_PARALLEL (0 = find out).", ge=0)] = 0
    max_loaded_models: Annotated[
        int, _doc("Ollama's OLLAMA_MAX_LOADED_MODELS (0 = find out).", ge=0)
    ] = 0
    log_level: Annotated[str, _doc("debug, info, warning or error.")] = "info"
    services: Annotated[
        str,
        _doc("A herd-node-services YAML file: also serve its speech, embedding, image models."),
    ] = ""


class AgentSettingsError(Exception):
    """A setting of the agent is wrong; the message is for the person who set it."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="herd-node",
        description="The herd node agent: reports this machine and its Ollama to a herd router.",
        epilog="Every flag can also be set as HERD_NODE_<FLAG> (e.g. HERD_NODE_ROUTER) or in "
        "the --config YAML file; a flag beats the environment, which beats the file.",
    )
    parser.add_argument("--router", help="router URL, e.g. http://10.0.0.2:11435 (default: mDNS)")
    parser.add_argument("--ollama", help=f"local Ollama URL (default {DEFAULT_OLLAMA})")
    parser.add_argument("--token", help="the router's node token")
    parser.add_argument("--name", help="node name (default: this host's name)")
    parser.add_argument("--advertise", help="Ollama URL the router should use")
    parser.add_argument("--interval", type=float, help="seconds between heartbeats (default 5)")
    parser.add_argument("--timeout", type=float, help="seconds per request (default 5)")
    parser.add_argument("--num-parallel", type=int, help="Ollama's OLLAMA_NUM_PARALLEL")
    parser.add_argument("--max-loaded-models", type=int, help="OLLAMA_MAX_LOADED_MODELS")
    parser.add_argument("--log-level", help="debug, info, warning or error")
    parser.add_argument(
        "--services",
        help="herd-node-services YAML: also serve its transcription, embedding and image "
        "models (see docs/workloads.md)",
    )
    parser.add_argument("--config", help="YAML file with the same keys (HERD_NODE_CONFIG)")
    parser.add_argument("--version", action="version", version=f"herd-node {herd.__version__}")
    return parser


def load_agent_settings(
    argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None
) -> AgentSettings:
    """Merge the YAML file, the environment and the flags, and check the result.

    Raises:
        AgentSettingsError: a bad file, value or URL, said plainly.

    Example:
        >>> load_agent_settings(["--name", "a"], env={"HERD_NODE_NAME": "b"}).name
        'a'
    """
    env = os.environ if env is None else env
    args = build_parser().parse_args(argv)
    fields = AgentSettings.__struct_fields__
    raw: dict[str, Any] = {}
    config_path = args.config or env.get(ENV_PREFIX + "CONFIG")
    if config_path:
        raw.update(_read_yaml(config_path))
    for key in fields:
        value = env.get(ENV_PREFIX + key.upper())
        if value is not None and value != "":
            raw[key] = value
    for key in fields:
        value = getattr(args, key, None)
        if value is not None:
            raw[key] = value
    try:
        settings = msgspec.convert(raw, AgentSettings, strict=False)
    except msgspec.ValidationError as exc:
        raise AgentSettingsError(f"herd-node setting: {exc}") from None
    if not settings.name:
        settings = msgspec.structs.replace(settings, name=socket.gethostname())
    for key in ("ollama", "router", "advertise"):
        value = getattr(settings, key)
        if value:
            problem = check_http_url(value)
            if problem:
                raise AgentSettingsError(f"herd-node: --{key} {value!r}: {problem}")
    return settings


def _read_yaml(path: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise AgentSettingsError(f"herd-node: cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise AgentSettingsError(f"herd-node: {path} is not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise AgentSettingsError(f"herd-node: {path}: the top level must be a mapping")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def check_http_url(url: str) -> str | None:
    """Why ``url`` is not an ``http(s)://host[:port][/path]`` URL, or None when it is."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return f"not a URL ({exc})"
    if parts.scheme not in ("http", "https"):
        return "must start with http:// or https://"
    if not parts.hostname:
        return "has no host"
    if parts.username is not None or parts.password is not None:
        return "must not carry a user name or password"
    if parts.query or parts.fragment:
        return "must not have a query or fragment"
    if port == 0:
        return "has port 0"
    return None


def stated_ollama_url(settings: AgentSettings, router: str) -> str:
    """The Ollama URL the agent tells the router to use.

    ``--advertise`` when given. Otherwise the ``--ollama`` URL, except that a loopback host
    there is useless to a router on another machine: it is replaced by this machine's
    address on the route to the router (found without sending anything).
    """
    if settings.advertise:
        return settings.advertise.rstrip("/")
    url = settings.ollama.rstrip("/")
    parts = urlsplit(url)
    router_host = urlsplit(router).hostname or ""
    if not is_loopback_host(parts.hostname or "") or is_loopback_host(router_host):
        return url
    local = _address_towards(router_host, urlsplit(router).port or 80)
    if not local:
        return url
    host = f"[{local}]" if ":" in local else local
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _address_towards(host: str, port: int) -> str:
    """This machine's source address for packets to ``host`` (a UDP connect sends nothing)."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
        with socket.socket(family[0], socket.SOCK_DGRAM) as probe:
            probe.connect(family[4])
            return str(probe.getsockname()[0])
    except OSError:
        return ""
