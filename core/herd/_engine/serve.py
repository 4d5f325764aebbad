"""Running the router from the command line: checks first, then one clear line per failure.

Start-up happens in an order that lets every failure be said in one line with a non-zero
exit: the data directory is locked (a second herd on the same ``data_dir`` would fight the
first over DuckDB), the port is bound (so "address already in use" is ours to say), the app
starts (plugins, sinks, the first poll of every node), and only then ``listening on ...``,
one line per node found and the plugins loaded.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import logging
import os
import socket
import sys
from collections.abc import Iterator
from typing import Any, TextIO

import herd
from herd.net import open_files_limit
from herd.settings import Settings

__all__ = ["StartupError", "explain", "freeze_startup_objects", "lock_data_dir", "run_router"]

log = logging.getLogger("herd")

#: open files below which start-up warns (2,000 streams at once, two each)
ROOMY_OPEN_FILES = 4096
_FILES_AT_REST = 64  # what a started router holds open besides its streams (about)


class StartupError(Exception):
    """The router cannot start; the message is the one line to print."""


def lock_data_dir(settings: Settings) -> TextIO | None:
    """Create the data directory and hold its lock for the life of the process.

    Returns:
        The open lock file (keep a reference), or None with no data directory.

    Raises:
        StartupError: the directory cannot be used, or another herd holds it.
    """
    if not settings.data_dir:
        return None
    path = settings.data_path
    try:
        path.mkdir(parents=True, exist_ok=True)
        lock = open(path / "router.lock", "a+", encoding="utf-8")  # noqa: SIM115 -- held open
    except OSError as exc:
        raise StartupError(f"cannot use data_dir {path}: {exc.strerror or exc}") from None
    try:
        import fcntl
    except ImportError:  # not POSIX: DuckDB's own lock still refuses a second writer
        return lock
    try:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        lock.seek(0)
        holder = lock.read().strip() or "another process"
        lock.close()
        raise StartupError(
            f"data_dir {path} is in use by another herd ({holder}); stop it, or give this "
            "one its own data_dir (--data-dir or HERD_DATA_DIR)"
        ) from None
    lock.seek(0)
    lock.truncate()
    lock.write(f"pid {os.getpid()}\n")
    lock.flush()
    return lock


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound now so a busy port is a clear error before anything runs."""
    try:
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise StartupError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        reason = exc.strerror or str(exc)
        busy = exc.errno == errno.EADDRINUSE
        hint = " (another program has the port; pick another with --port)" if busy else ""
        raise StartupError(f"cannot listen on {host}:{port}: {reason}{hint}") from None
    sock.set_inheritable(True)
    return sock


def explain(exc: BaseException) -> str:
    """One line for an exception, however deeply it is wrapped (ExceptionGroups)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = " ".join(str(exc).split())
    if "Could not set lock on file" in text or "Conflicting lock" in text:
        return f"the data_dir's trace database is in use by another process: {text}"
    if type(exc).__module__.startswith("herd"):  # our own errors say what is wrong already
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def run_router(asgi: Any, app: Any, settings: Settings, sock: socket.socket) -> int:
    """Serve ``asgi`` (``app``, maybe wrapped) on ``sock`` until SIGINT/SIGTERM.

    Returns:
        0 after a clean stop; 1 when the app could not start (said in one line).
    """
    import uvicorn

    class RouterServer(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            with _uvicorn_errors(_DropErrors()):  # a failed start is said once, by us
                await super().startup(sockets)
            _announce(app, settings, sock.getsockname()[1])  # (port 0: the one chosen)
            log.debug("start-up objects kept out of the cyclic GC: %d", freeze_startup_objects())

        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            with _uvicorn_errors(_SayGraceOver(settings.limits.shutdown_grace_s)):
                await super().shutdown(sockets)

    from herd._engine.server import server_config

    config = server_config(  # bounded request headers (limits.max_header_bytes, ...)
        asgi,
        settings,
        log_config=None,
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=settings.limits.shutdown_grace_s,
    )
    server = RouterServer(config)
    try:
        server.run(sockets=[sock])
    except (SystemExit, KeyboardInterrupt):
        # uvicorn shuts down gracefully on Ctrl-C, then re-raises SIGINT, which Python turns
        # into a KeyboardInterrupt: the stop was asked for and done, so no traceback.
        pass
    finally:
        sock.close()
    if not server.started:
        failures = getattr(app.state, "startup_failures", [])
        reason = explain(failures[0]) if failures else "see the lines above"
        print(f"herd: cannot start: {reason}", file=sys.stderr)
        return 1
    return 0


def freeze_startup_objects() -> int:
    """Keep what start-up made (modules, plugins, the app) out of the cyclic GC's scans.

    A started router holds about 90,000 objects that live as long as it does. Python's full
    collection walks every one of them: measured on a 2-core VM, it held the event loop
    for 50-80 ms once every 2,000-4,000 sequential streamed chats, a stall for every
    stream in flight. Frozen (``gc.freeze``), they are never scanned again, and a
    collection walks only the few thousand objects that requests keep alive. Garbage left
    by start-up is collected first, so nothing already dead is kept. (A start-up object
    dropped later is still freed by reference counting; only one caught in a reference
    cycle would stay, which start-up's long-lived objects are not expected to be.)

    Returns:
        How many objects are frozen.
    """
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


@contextlib.contextmanager
def _uvicorn_errors(said: logging.Filter) -> Iterator[None]:
    """uvicorn's own log lines pass through ``said`` meanwhile (herd says some itself)."""
    uvicorn_log = logging.getLogger("uvicorn.error")
    uvicorn_log.addFilter(said)
    try:
        yield
    finally:
        uvicorn_log.removeFilter(said)


class _DropErrors(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < logging.ERROR


class _SayGraceOver(logging.Filter):
    """uvicorn's error when requests outlast the grace period, said as what it is: an
    expected end, each request answered with an error its client reads (a warning)."""

    def __init__(self, grace_s: float) -> None:
        super().__init__()
        self.grace_s = grace_s

    def filter(self, record: logging.LogRecord) -> bool:
        if not str(record.msg).startswith("Cancel %s running task(s)"):
            return True
        log.warning(
            "stopping: %s request(s) still running after limits.shutdown_grace_s (%g s) "
            "end now, each with an error its client reads",
            record.args[0] if isinstance(record.args, tuple) and record.args else "some",
            self.grace_s,
        )
        return False


def _announce(app: Any, settings: Settings, port: int) -> None:
    host = settings.host if ":" not in settings.host else f"[{settings.host}]"
    log.info(
        "herd %s listening on http://%s:%d (Ollama API at /api, OpenAI API at /v1)",
        herd.__version__,
        host,
        port,
    )
    files = open_files_limit()
    if 0 < files < ROOMY_OPEN_FILES:
        log.warning(
            "this process may open only %d files (ulimit -n), which is about %d streams at "
            "once (each holds a client connection and a node connection); raise the limit "
            "(ulimit -n, or LimitNOFILE= in a systemd unit) to serve more",
            files,
            max(0, (files - _FILES_AT_REST) // 2),
        )
    router = app.state.router
    for view in router.nodes():
        models = len(view.models)
        detail = (
            f"{models} model{'s' if models != 1 else ''}"
            if view.online
            else (view.last_error or "not answering")
        )
        log.info("node %s (%s, %s): %s, %s", view.name, view.type, view.url, view.status, detail)
    pm = app.state.gateway.pm  # a disabled name is listed too, blocked, with no plugin
    names = sorted(_short(name) for name, plugin in pm.list_name_plugin() if plugin is not None)
    log.info("plugins loaded: %s", ", ".join(names) or "none")


def _short(name: str) -> str:
    """``sink-duckdb`` for ``herd_plugins.sink_duckdb``: the name ``plugins.disable`` takes."""
    if name.startswith(("herd_plugins.", "herd_contrib.")):
        return name.rsplit(".", 1)[-1].replace("_", "-")
    return name
