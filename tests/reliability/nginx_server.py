"""A real nginx in front of a router: loopback, a free port, its own prefix, stopped after.

Debian's ``nginx`` (or ``nginx-light``) with a configuration as a newcomer writes it: a
``proxy_pass`` and nothing else, so nginx's defaults apply (HTTP/1.0 to the upstream,
replies buffered unless the upstream says ``X-Accel-Buffering: no``). Skipped with a
clear reason where nginx is missing; ``HERD_REQUIRE_NGINX=1`` (``.ci/run``) makes that a
failure.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

__all__ = ["NginxServer", "nginx"]

_CONFIG = """daemon off;
master_process off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {prefix}/body;
  proxy_temp_path {prefix}/proxy;
  fastcgi_temp_path {prefix}/fastcgi;
  uwsgi_temp_path {prefix}/uwsgi;
  scgi_temp_path {prefix}/scgi;
{servers}
}}
"""
# a newcomer's server block: a proxy_pass and nothing else (``extra`` goes in its location)
_PLAIN_SERVER = """  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass {upstream};
{extra}    }}
  }}"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class NginxServer:
    """One nginx process; ``servers(port)`` gives its ``http`` block's server blocks,
    listening on ``port`` (a free loopback port)."""

    def __init__(self, binary: str, prefix: Path, servers: Callable[[int], str]) -> None:
        self.port = _free_port()
        self.prefix = prefix
        config = prefix / "nginx.conf"
        config.write_text(_CONFIG.format(prefix=prefix, servers=servers(self.port)))
        self.process = subprocess.Popen(
            [binary, "-c", str(config), "-p", str(prefix), "-e", str(prefix / "error.log")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"nginx exited: {self.process.stderr.read()!r}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"nginx did not listen on port {self.port}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


@pytest.fixture
def nginx(tmp_path: Path) -> Iterator[Callable[..., NginxServer]]:
    """``nginx(upstream, extra="")``: a started nginx in front of ``upstream``, with a
    plain ``proxy_pass`` (and ``extra`` in its location); ``nginx(servers=f)``: one whose
    server blocks are ``f(port)``."""
    binary = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None
    )
    if binary is None:
        if os.environ.get("HERD_REQUIRE_NGINX") == "1":  # CI: a missing nginx is a failure
            pytest.fail("HERD_REQUIRE_NGINX=1 but nginx is not installed")
        pytest.skip("needs Debian's nginx (apt-get install nginx-light)")
    started: list[NginxServer] = []

    def start(
        upstream: str = "", extra: str = "", servers: Callable[[int], str] | None = None
    ) -> NginxServer:
        prefix = tmp_path / f"nginx{len(started)}"
        prefix.mkdir()
        if servers is None:

            def servers(port: int) -> str:
                return _PLAIN_SERVER.format(port=port, upstream=upstream, extra=extra)

        server = NginxServer(binary, prefix, servers)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
