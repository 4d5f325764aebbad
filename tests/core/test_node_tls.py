"""A node behind HTTPS: herd checks its certificate, says plainly why it refused one, and
trusts a private certificate authority named by ``SSL_CERT_FILE`` (a homelab's own CA, Caddy's
``tls internal``), for its polls and its inference requests alike."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from herd.testing import SimConfig, SimNode

from tests.conftest import emulated
from tests.core.processes import HerdProcess, clean_env, free_port


@contextlib.contextmanager
def _tls_in_front(port: int, cert: Path, key: Path) -> Iterator[int]:
    """An HTTPS front on a free port that passes every connection's bytes to ``port``,
    as a TLS-terminating proxy before a node would."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    loop = asyncio.new_event_loop()
    front = free_port()

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, ssl.SSLError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        node_reader, node_writer = await asyncio.open_connection("127.0.0.1", port)
        await asyncio.gather(pipe(reader, node_writer), pipe(node_reader, writer))

    server = loop.run_until_complete(
        asyncio.start_server(connected, "127.0.0.1", front, ssl=context)
    )
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield front
    finally:
        loop.call_soon_threadsafe(server.close)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


@pytest.fixture
def https_node(self_signed: tuple[Path, Path]) -> Iterator[tuple[str, Path]]:
    """(the URL of an emulated node behind HTTPS, the authority of its certificate: the
    certificate itself, self-signed, as a private CA's root is)."""
    cert, key = self_signed
    node = SimNode(SimConfig(name="tls", port=0, models=[emulated("llama3.2:3b")]))
    node.start()
    try:
        with _tls_in_front(node.port, cert, key) as front:
            yield f"https://127.0.0.1:{front}", cert
    finally:
        node.stop()


def _router(tmp_path: Path, url: str, **env: str) -> tuple[HerdProcess, str]:
    config = tmp_path / "herd.yaml"
    config.write_text(f"data_dir: '{tmp_path / 'data'}'\nnodes:\n  - {{name: tls, url: '{url}'}}\n")
    port = free_port()
    herd = HerdProcess(
        ["--config", str(config), "--port", str(port)], clean_env(**env), tmp_path / "herd.log"
    )
    return herd, f"http://127.0.0.1:{port}"


def test_a_node_whose_certificate_no_known_authority_signed_is_offline_and_says_why(
    https_node: tuple[str, Path], tmp_path: Path
) -> None:
    url, _ = https_node
    herd, router = _router(tmp_path, url, SSL_CERT_FILE=str(tmp_path / "no-such-bundle.pem"))
    try:
        herd.wait_ready(router)
        herd.wait_for_line(r"node tls .*offline.*CERTIFICATE_VERIFY_FAILED")
    finally:
        herd.stop()


def test_a_private_authority_named_by_ssl_cert_file_is_trusted(
    https_node: tuple[str, Path], tmp_path: Path
) -> None:
    url, ca = https_node
    herd, router = _router(tmp_path, url, SSL_CERT_FILE=str(ca))
    try:
        herd.wait_ready(router)
        herd.wait_for_line(r"node tls .*online")
        body = {"model": "llama3.2:3b", "messages": [{"role": "user", "content": "hi"}]}
        with httpx.stream("POST", router + "/api/chat", json=body, timeout=30) as reply:
            assert reply.status_code == 200
            lines = list(reply.iter_lines())
        assert len(lines) > 2 and '"done":true' in lines[-1].replace(" ", "")
        tags = httpx.get(router + "/api/tags", timeout=10).json()  # (the polls' view)
        assert [model["name"] for model in tags["models"]] == ["llama3.2:3b"]
    finally:
        herd.stop()
