"""The ``herd`` command: the router, ``check-config``, and the operator commands.

``herd`` (or ``herd serve``) starts the router. ``herd check-config [FILE]`` validates the
configuration and prints it with where each value came from. ``herd status``, ``models``,
``pull``, ``delete``, ``drain`` and ``undrain`` talk to a running router over its HTTP API
(:mod:`herd._engine.cli_ops`). ``herd-node`` lives in :mod:`herd_node.cli`.
"""

from __future__ import annotations

import logging
import os
import sys

from herd._engine.cli_args import flag_overrides, serve_parser
from herd._engine.config import ConfigError, check_backends, load_config
from herd._engine.plugins import PluginLoadError

__all__ = ["main", "node_main"]


def main(argv: list[str] | None = None) -> int:
    """``herd``: dispatch to a subcommand, or start the router."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return _dispatch(argv)
    except KeyboardInterrupt:  # Ctrl-C before the server runs (slow imports, a prompt)
        print("herd: interrupted", file=sys.stderr)
        return 130
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
    from herd.net import raise_open_files_limit

    raise_open_files_limit()  # (before anything opens a file: the trace store, the socket)
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
