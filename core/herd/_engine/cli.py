"""The ``herd`` command (the router); ``herd-node`` lives in :mod:`herd_node.cli`."""

from __future__ import annotations

import argparse
import logging
import os
import sys

import herd
from herd._engine.config import ConfigError, load_settings
from herd._engine.plugins import PluginLoadError

__all__ = ["main", "node_main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="herd",
        description="One smart endpoint for a fleet of Ollama machines (Ollama + OpenAI APIs).",
    )
    parser.add_argument("--config", "-c", default=os.environ.get("HERD_CONFIG"), help="YAML file")
    parser.add_argument("--host", help="listen address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="listen port (default 11435)")
    parser.add_argument("--log-level", help="debug, info, warning or error")
    parser.add_argument("--version", action="version", version=f"herd {herd.__version__}")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Start the router."""
    args = _parser().parse_args(argv)
    try:
        settings = load_settings(
            args.config,
            overrides={"host": args.host, "port": args.port, "log_level": args.log_level},
        )
    except ConfigError as exc:
        print(f"herd: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        from herd._engine.app import create_app

        app = create_app(settings)
    except (PluginLoadError, ValueError) as exc:
        print(f"herd: {exc}", file=sys.stderr)
        return 2
    import uvicorn

    from herd._engine.server import server_config

    logging.getLogger("herd").info(
        "herd %s listening on http://%s:%d (Ollama API at /api, OpenAI API at /v1)",
        herd.__version__,
        settings.host,
        settings.port,
    )
    config = server_config(
        app,
        settings,
        host=settings.host,
        port=settings.port,
        log_level="warning",
        access_log=False,
        lifespan="on",
    )
    uvicorn.Server(config).run()
    return 0


def node_main(argv: list[str] | None = None) -> int:
    """``herd-node``: the node agent (see :mod:`herd_node.cli`)."""
    from herd_node.cli import main as agent_main

    return agent_main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
