"""The router's command-line flags, shared by ``herd``, ``herd serve`` and ``check-config``."""

from __future__ import annotations

import argparse
import os

import herd

__all__ = ["EPILOG", "flag_overrides", "serve_parser"]

EPILOG = """\
commands:
  herd [serve] [options]      start the router (the default)
  herd check-config [FILE]    validate the configuration; print it with each value's source
  herd status                 nodes, models and queues of a running router
  herd models                 every model in the fleet and where it is loaded
  herd pull MODEL [--node N]  pull a model onto a node (asks first; --yes to skip)
  herd delete MODEL --node N  delete a model from a node (asks first)
  herd drain NODE / undrain   stop / resume sending new requests to a node (asks first)
The operator commands take --router URL (or HERD_ROUTER) and send HERD_ADMIN_KEY.
"""


def serve_parser(prog: str = "herd") -> argparse.ArgumentParser:
    """The router's flags (shared by ``herd``, ``herd serve`` and ``herd check-config``)."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="One smart endpoint for a fleet of Ollama machines (Ollama + OpenAI APIs).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", "-c", default=os.environ.get("HERD_CONFIG"), help="YAML file")
    parser.add_argument("--host", help="listen address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="listen port (default 11435)")
    parser.add_argument("--data-dir", help="directory for traces and saved settings")
    parser.add_argument("--log-level", help="debug, info, warning or error (default info)")
    parser.add_argument("--log-format", help="text (default) or json: one JSON object a line")
    parser.add_argument(
        "--access-log",
        action="store_const",
        const=True,
        default=None,
        help="log one line per HTTP request",
    )
    parser.add_argument("--version", action="version", version=f"herd {herd.__version__}")
    return parser


def flag_overrides(args: argparse.Namespace) -> dict[str, object]:
    """The settings the flags give (None = not given)."""
    return {
        "host": args.host,
        "port": args.port,
        "data_dir": args.data_dir,
        "log_level": args.log_level,
        "log_format": args.log_format,
        "access_log": args.access_log,
    }
