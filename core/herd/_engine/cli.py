"""The ``herd`` command: the router, ``check-config``, and the operator commands.

``herd`` (or ``herd serve``) starts the router. ``herd check-config [FILE]`` validates the
configuration and prints it with where each value came from. ``herd status``, ``models``,
``pull``, ``delete``, ``drain`` and ``undrain`` talk to a running router over its HTTP API
(:mod:`herd._engine.cli_ops`). ``herd-node`` lives in :mod:`herd_node.cli`.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

import herd
from herd._engine.config import ConfigError, check_backends, load_config
from herd._engine.plugins import PluginLoadError

__all__ = ["main", "node_main"]

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


def main(argv: list[str] | None = None) -> int:
    """``herd``: dispatch to a subcommand, or start the router."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return _dispatch(argv)
    except BrokenPipeError:
        # `herd status | head`: the reader left. Say nothing more (stdout is gone, and
        # Python would print a traceback when it flushes it at exit); exit as SIGPIPE would.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


def _dispatch(argv: list[str]) -> int:
    if argv and argv[0] == "check-config":
        from herd._engine.cli_check import check_config

        return check_config(argv[1:])
    if argv:
        from herd._engine.cli_ops import COMMANDS, run_command

        if argv[0] in COMMANDS:
            return run_command(argv)
    if argv and argv[0] == "serve":
        argv = argv[1:]
    elif argv and not argv[0].startswith("-"):
        from herd._engine.cli_ops import COMMANDS

        known = ", ".join(("serve", "check-config", *COMMANDS))
        hint = "see herd --help"
        if argv[0].endswith((".yaml", ".yml")):  # `herd herd.yaml`
            hint = f"did you mean herd --config {argv[0]}?"
        print(f"herd: unknown command {argv[0]!r} (commands: {known}; {hint})", file=sys.stderr)
        return 2
    return serve(argv)


def serve(argv: list[str]) -> int:
    """Start the router; every failure to start is one line on stderr and a non-zero exit."""
    args = serve_parser().parse_args(argv)
    try:
        loaded = load_config(args.config, overrides=flag_overrides(args))
    except ConfigError as exc:
        print(f"herd: {exc}", file=sys.stderr)
        return 2
    settings = loaded.settings
    from herd._engine.logs import AccessLog, configure_logging

    configure_logging(settings.log_level, settings.log_format)
    log = logging.getLogger("herd")
    if loaded.ignored:
        log.warning("%s", loaded.warning())
    if os.environ.get("HERD_ADMIN_KEY") and not settings.auth.admin_key:
        log.warning(
            "HERD_ADMIN_KEY is the key the herd CLI sends; the router's own admin key is "
            "auth.admin_key (HERD_AUTH__ADMIN_KEY), which is not set"
        )
    try:
        from herd._engine.app import create_app

        app = create_app(settings)
        check_backends(loaded, app.state.gateway.backend_classes)
    except (ConfigError, PluginLoadError, ValueError) as exc:
        print(f"herd: {exc}", file=sys.stderr)
        return 2
    from herd._engine.serve import StartupError, bind, lock_data_dir, run_router

    try:
        lock = lock_data_dir(settings)
        sock = bind(settings.host, settings.port)
    except StartupError as exc:
        print(f"herd: {exc}", file=sys.stderr)
        return 1
    try:
        asgi = AccessLog(app) if settings.access_log else app
        return run_router(asgi, app, settings, sock)
    finally:
        if lock is not None:
            lock.close()


def node_main(argv: list[str] | None = None) -> int:
    """``herd-node``: the node agent (see :mod:`herd_node.cli`)."""
    from herd_node.cli import main as agent_main

    return agent_main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
