"""Nodes written the short way: a URL (or several) where a list of node maps is expected.

``HERD_NODES=http://10.0.0.5:11434,http://10.0.0.6:11434``, ``HERD_NODES=gpu1`` and, in
YAML, ``nodes: [http://10.0.0.5:11434, {name: big, url: ...}]`` all mean nodes: each URL
becomes ``{name, url}``, named for its host (and its port, unless it is 11434). One node
map on its own is a list of one. A URL without a scheme is read the way Ollama reads
``OLLAMA_HOST``: ``http://``, and port 11434 when none is given.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import yaml

__all__ = ["expand_nodes", "nodes_env_value"]

OLLAMA_PORT = 11434
_SEPARATORS = re.compile(r"[,\s]+")


def expand_nodes(value: Any) -> Any:
    """``nodes`` with every URL written as a node map (anything else is left as it is, for
    the schema to judge)."""
    if isinstance(value, str):
        value = [url for url in _SEPARATORS.split(value.strip()) if url]
    elif isinstance(value, dict):
        value = [value]  # one node
    if not isinstance(value, list):
        return value
    return [_node(item) if isinstance(item, str) else item for item in value]


def _node(url: str) -> dict[str, str]:
    url = url.strip()
    if "://" not in url:
        url = f"http://{url}"
        try:
            parts = urlsplit(url)
            if parts.hostname is not None and parts.port is None:
                url = f"http://{parts.netloc}:{OLLAMA_PORT}"
        except ValueError:  # no URL: the URL check says why
            pass
    return {"name": _name(url), "url": url}


def _name(url: str) -> str:
    """The host, and its port unless it is Ollama's."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname or "", parts.port
    except ValueError:
        return url
    if not host:
        return url
    return host if port in (None, OLLAMA_PORT) else f"{host}:{port}"


def nodes_env_value(value: str, parse: Callable[[str], Any]) -> Any:
    """``HERD_NODES`` as :func:`expand_nodes` takes it: YAML node maps, or URLs as written
    (``[::1]:11434`` is no YAML). ``parse`` reads YAML the way every other variable is
    read (its error names the variable)."""
    if not value.strip():
        return []  # set but empty: no nodes (this machine's Ollama is still looked for)
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError:
        looks_yaml = "{" in value or ": " in value or value.lstrip().startswith("- ")
        return parse(value) if looks_yaml else value  # (no URL has those)
    if isinstance(parsed, list) and all(isinstance(item, str) for item in parsed):
        return value if value.lstrip().startswith("[::") else parsed  # ([::1] is a URL)
    return parsed if isinstance(parsed, (list, dict)) or parsed is None else value
