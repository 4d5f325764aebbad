"""``herd-node-services``' configuration: its YAML file and its flags (flags win)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import herd
import msgspec
import yaml

from herd_services.config import ServicesConfig, ServicesConfigError

__all__ = ["load_services_config"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="herd-node-services",
        description="Serve this machine's speech-to-text, embedding and image models over "
        "OpenAI-compatible endpoints, for a herd router (nodes[].services).",
    )
    parser.add_argument("--config", "-c", help="YAML file (keys: host, port, transcription, ...)")
    parser.add_argument("--host", help="listen address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="listen port (default 11436)")
    parser.add_argument(
        "--whisper",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="a faster-whisper model: a directory or package:NAME (repeatable)",
    )
    parser.add_argument(
        "--embed",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="a sentence-transformers model: a directory or package:NAME (repeatable)",
    )
    parser.add_argument(
        "--image",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="a diffusers pipeline directory (repeatable; skipped where weights are missing)",
    )
    parser.add_argument("--api-key", help="require Authorization: Bearer KEY")
    parser.add_argument("--log-level", default="info", help="debug, info, warning or error")
    parser.add_argument("--version", action="version", version=f"herd {herd.__version__}")
    return parser


def _models(specs: list[str], flag: str) -> list[dict[str, Any]]:
    out = []
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise ServicesConfigError(f"--{flag} {spec!r}: write NAME=PATH")
        out.append({"name": name, "path": path})
    return out


def load_services_config(argv: Sequence[str] | None = None) -> tuple[ServicesConfig, str]:
    """The configuration from the YAML file and the flags (flags win), and the log level."""
    args = _parser().parse_args(argv)
    raw: dict[str, Any] = {}
    path = args.config or os.environ.get("HERD_NODE_SERVICES_CONFIG")
    if path:
        try:
            raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ServicesConfigError(f"cannot read {path}: {exc}") from None
        if not isinstance(raw, dict):
            raise ServicesConfigError(f"{path}: the top level must be a mapping")
    for key in ("host", "port", "api_key"):
        if getattr(args, key) is not None:
            raw[key] = getattr(args, key)
    for flag, key in (("whisper", "transcription"), ("embed", "embeddings"), ("image", "images")):
        raw[key] = [*raw.get(key, []), *_models(getattr(args, flag), flag)]
    try:
        return msgspec.convert(raw, ServicesConfig, strict=False), args.log_level
    except msgspec.ValidationError as exc:
        raise ServicesConfigError(f"herd-node-services setting: {exc}") from None
