"""Real reverse proxies in front of routers: loopback, free ports, stopped after each test.

- ``nginx``: Debian's nginx (``nginx-light``), with a configuration as a newcomer writes it
  (a ``proxy_pass`` and nothing else, so nginx's defaults apply: HTTP/1.0 to the upstream,
  replies buffered unless the upstream says ``X-Accel-Buffering: no``), or any server
  blocks a test gives (the one ``docs/deploy.md`` shows).
- ``haproxy``: Debian's HAProxy with the configuration a test gives (the one
  ``docs/deploy.md`` shows for several routers).

Skipped with a clear reason where the proxy is missing; ``HERD_REQUIRE_PROXY=1``
(``.ci/run``) makes that a failure.
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

from tests.core.processes import free_port

__all__ = ["ProxyProcess", "haproxy", "nginx"]

_NGINX_CONFIG = """daemon off;
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


class ProxyProcess:
    """One proxy process, started with ``args``, listening on ``port`` once started."""

    def __init__(self, name: str, args: list[str], port: int) -> None:
        self.name = name
        self.port = port
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{name} exited: {self.process.stderr.read()!r}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"{name} did not listen on port {port}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


def _binary(name: str) -> str:
    found = shutil.which(name) or (
        f"/usr/sbin/{name}" if os.access(f"/usr/sbin/{name}", os.X_OK) else None
    )
    if found is None:
        if os.environ.get("HERD_REQUIRE_PROXY") == "1":  # CI: a missing proxy is a failure
            pytest.fail(f"HERD_REQUIRE_PROXY=1 but {name} is not installed")
        pytest.skip(f"needs Debian's {name} (apt-get install {name})")
    return found


@pytest.fixture
def nginx(tmp_path: Path) -> Iterator[Callable[..., ProxyProcess]]:
    """``nginx(upstream, extra="")``: a started nginx in front of ``upstream``, with a
    plain ``proxy_pass`` (and ``extra`` in its location); ``nginx(servers=f)``: one whose
    ``http`` block's server blocks are ``f(port)``, ``port`` a free loopback port."""
    binary = _binary("nginx")
    started: list[ProxyProcess] = []

    def start(
        upstream: str = "", extra: str = "", servers: Callable[[int], str] | None = None
    ) -> ProxyProcess:
        prefix = tmp_path / f"nginx{len(started)}"
        prefix.mkdir()
        port = free_port()
        blocks = (
            servers(port)
            if servers is not None
            else _PLAIN_SERVER.format(port=port, upstream=upstream, extra=extra)
        )
        config = prefix / "nginx.conf"
        config.write_text(_NGINX_CONFIG.format(prefix=prefix, servers=blocks))
        args = [binary, "-c", str(config), "-p", str(prefix), "-e", str(prefix / "error.log")]
        started.append(ProxyProcess("nginx", args, port))
        return started[-1]

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def haproxy(tmp_path: Path) -> Iterator[Callable[[Callable[[int], str]], ProxyProcess]]:
    """``haproxy(config)``: a started HAProxy whose configuration is ``config(port)``,
    binding ``port``, a free loopback port."""
    binary = _binary("haproxy")
    started: list[ProxyProcess] = []

    def start(config: Callable[[int], str]) -> ProxyProcess:
        port = free_port()
        path = tmp_path / f"haproxy{len(started)}.cfg"
        path.write_text(config(port))
        checked = subprocess.run([binary, "-c", "-q", "-f", str(path)], capture_output=True)
        assert checked.returncode == 0, checked.stderr.decode()
        started.append(ProxyProcess("haproxy", [binary, "-db", "-f", str(path)], port))
        return started[-1]

    yield start
    for server in started:
        server.stop()
