"""Starting ``herd`` for real: one clear line per failure, and what it says once it listens."""

from __future__ import annotations

import json
import re
import signal
import socket
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from tests.core.processes import HerdProcess, clean_env, free_port, run_herd


@pytest.fixture
def routers(tmp_path: Path) -> Iterator[list[HerdProcess]]:
    started: list[HerdProcess] = []
    yield started
    for router in started:
        router.stop()


def start(routers: list[HerdProcess], tmp_path: Path, args: list[str], **env: str) -> HerdProcess:
    router = HerdProcess(args, clean_env(**env), tmp_path / f"herd{len(routers)}.log")
    routers.append(router)
    return router


def one_clean_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def nodes_env(*sims) -> str:
    return "[" + ", ".join(f'{{name: {s.name}, url: "{s.url}"}}' for s in sims) + "]"


def test_port_in_use_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        args = ["--port", str(port), "--data-dir", str(tmp_path)]
        code, stderr = run_herd(args, clean_env(HERD_FLEET__DISCOVER_LOCAL="false"))
    assert code == 1
    line = one_clean_line(stderr)
    assert f"cannot listen on 127.0.0.1:{port}" in line and "in use" in line


def test_bad_log_level_and_unreadable_config_are_one_line(tmp_path: Path) -> None:
    code, stderr = run_herd(["--log-level", "loud"], clean_env())
    assert code == 2
    assert "'loud' is not a log level" in one_clean_line(stderr)
    code, stderr = run_herd(["--config", str(tmp_path)], clean_env())
    assert code == 2
    assert "cannot read config file" in one_clean_line(stderr)
    bad = tmp_path / "herd.yaml"
    bad.write_text("nodes:\n  - {name: a, url: 'studio:11434'}\n")
    code, stderr = run_herd(["--config", str(bad)], clean_env())
    assert code == 2
    assert "line 2: nodes[0].url" in one_clean_line(stderr)


def test_a_second_router_on_the_same_data_dir_is_one_line(
    make_sim, routers: list[HerdProcess], tmp_path: Path
) -> None:
    sim = make_sim(name="a")
    data = tmp_path / "data"
    port = free_port()
    first = start(
        routers, tmp_path, ["--port", str(port), "--data-dir", str(data)], HERD_NODES=nodes_env(sim)
    )
    first.wait_ready(f"http://127.0.0.1:{port}")
    args = ["--port", str(free_port()), "--data-dir", str(data)]
    code, stderr = run_herd(args, clean_env(HERD_NODES=nodes_env(sim)))
    assert code == 1
    line = one_clean_line(stderr)
    assert f"data_dir {data} is in use by another herd (pid {first.process.pid})" in line


def test_a_trace_database_held_by_another_process_is_one_line(tmp_path: Path) -> None:
    duckdb = pytest.importorskip("duckdb")
    data = tmp_path / "data"
    data.mkdir()
    holder = duckdb.connect(str(data / "herd.duckdb"))  # this test process holds the lock
    try:
        args = ["--port", str(free_port()), "--data-dir", str(data)]
        code, stderr = run_herd(args, clean_env(HERD_FLEET__DISCOVER_LOCAL="false"))
    finally:
        holder.close()
    assert code == 1
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stderr and "ExceptionGroup" not in stderr
    assert lines[-1].startswith("herd: cannot start: ")
    assert "in use by another process" in lines[-1]


def test_listening_comes_after_the_bind_then_nodes_and_plugins(
    make_sim, routers: list[HerdProcess], tmp_path: Path
) -> None:
    a, b = make_sim(name="a"), make_sim(name="b")
    port = free_port()
    router = start(
        routers,
        tmp_path,
        ["--port", str(port), "--data-dir", str(tmp_path / "d")],
        HERD_NODES=nodes_env(a, b)[:-1] + ', {name: gone, url: "http://127.0.0.1:9"}]',
        HERD_BIN="/opt/herd/bin",
        HERD_SERVICE_HOST="10.0.0.1",
        HERD_PORT_11435_TCP="tcp://10.0.0.1:11435",
        HERD_PORT="tcp://10.0.0.1:11435",
        HERD_SERVICE_PORT="11435",
        HERD_ADMIN_KEY="meant-for-the-router",
        HERD_DISABLE_PLUGINS="sink_otel",  # as the start-up line used to name it
    )
    router.wait_for_line(rf"listening on http://127\.0\.0\.1:{port}")
    # the port answers as soon as the line is there
    assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200
    router.wait_for_line(r"plugins loaded: .*dashboard")
    text = router.text()
    after = text[text.index("listening on") :]
    assert "node a (ollama, " in after and ": online, " in after
    assert "node b (ollama, " in after
    assert "node gone (ollama, http://127.0.0.1:9): offline" in after
    assert after.index("node gone") < after.index("plugins loaded")
    # the names plugins.disable takes; a disabled plugin is not listed as loaded
    loaded = re.search(r"plugins loaded: (.*)", text).group(1).split(", ")
    assert {"dashboard", "sink-duckdb", "backend-ollama"} <= set(loaded)
    assert not {"sink-otel", "sink_otel"} & set(loaded)
    warnings = [line for line in text.splitlines() if "name no herd setting" in line]
    assert len(warnings) == 1 and "HERD_BIN" in warnings[0]
    assert "HERD_SERVICE_HOST" not in text
    # the CLI's variable is not the router's key: say so rather than run unguarded in silence
    assert "HERD_ADMIN_KEY is the key the herd CLI sends" in text
    assert "meant-for-the-router" not in text


def test_quiet_json_logs_with_access_and_audit_lines(
    make_sim, routers: list[HerdProcess], tmp_path: Path
) -> None:
    sim = make_sim(name="a")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    router = start(
        routers,
        tmp_path,
        ["--port", str(port), "--data-dir", str(tmp_path / "d"), "--log-format", "json"],
        HERD_NODES=nodes_env(sim),
        HERD_ACCESS_LOG="true",
    )
    router.wait_for_line(r"plugins loaded")
    assert httpx.get(url + "/api/tags", timeout=10).status_code == 200
    chat = {"model": "llama3.2:3b", "messages": [{"role": "user", "content": "hi"}]}
    assert httpx.post(url + "/api/chat", json=chat, timeout=30).status_code == 200
    assert httpx.post(url + "/fleet/nodes/a/drain", timeout=10).status_code == 200
    router.wait_for_line(r'"logger": "herd.audit"')
    router.wait_for_line(r'"path": "/api/tags"')
    router.wait_for_line(r'"path": "/api/chat"')  # (a streamed chat is logged too)
    entries = [json.loads(line) for line in router.text().splitlines() if line.strip()]
    assert all(datetime.fromisoformat(e["time"]).utcoffset() is not None for e in entries)
    loggers = {e["logger"] for e in entries}
    assert not {name for name in loggers if not name.startswith("herd")}, loggers
    access = [
        e for e in entries if e["logger"] == "herd.access" and e["http"]["path"] == "/api/tags"
    ]
    assert access[0]["http"]["status"] == 200 and access[0]["http"]["client"] == "127.0.0.1"
    audit = [e for e in entries if e["logger"] == "herd.audit"]
    assert audit[0]["message"] == "drain node=a"


def test_refused_keys_are_logged_without_the_key(
    make_sim, routers: list[HerdProcess], tmp_path: Path
) -> None:
    sim = make_sim(name="a")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    router = start(
        routers,
        tmp_path,
        ["--port", str(port), "--data-dir", str(tmp_path / "d")],
        HERD_NODES=nodes_env(sim),
        HERD_AUTH__API_KEYS='[{name: ci, key: "the-right-key"}]',
    )
    router.wait_for_line(r"plugins loaded")
    reply = httpx.get(url + "/api/tags", headers={"Authorization": "Bearer wrong-secret-9"})
    assert reply.status_code == 401
    line = router.wait_for_line(r"herd\.audit: refused key .*").group(0)
    assert "reason='wrong key'" in line and "client=127.0.0.1" in line
    assert "wrong-secret-9" not in router.text() and "the-right-key" not in router.text()


def test_herd_serve_is_herd(make_sim, routers: list[HerdProcess], tmp_path: Path) -> None:
    sim = make_sim(name="a")
    port = free_port()
    router = start(
        routers,
        tmp_path,
        ["serve", "--port", str(port), "--data-dir", str(tmp_path / "d")],
        HERD_NODES=nodes_env(sim),
    )
    router.wait_ready(f"http://127.0.0.1:{port}")
    assert httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200
    # uvicorn stops gracefully, then re-raises SIGTERM so the parent sees how it ended
    assert router.stop() in (0, -15)
    assert "Traceback" not in router.text()


def test_ctrl_c_stops_the_router_without_a_traceback(
    make_sim, routers: list[HerdProcess], tmp_path: Path
) -> None:
    port = free_port()
    router = start(
        routers,
        tmp_path,
        ["--port", str(port), "--data-dir", str(tmp_path / "d")],
        HERD_NODES=nodes_env(make_sim(name="a")),
    )
    router.wait_ready(f"http://127.0.0.1:{port}")
    router.process.send_signal(signal.SIGINT)
    assert router.process.wait(30) == 0
    assert "Traceback" not in router.text() and "KeyboardInterrupt" not in router.text()


def test_start_up_objects_are_frozen_out_of_the_cyclic_gc(
    make_sim, routers: list[HerdProcess], tmp_path: Path
) -> None:
    # a full collection over everything start-up made stalled the event loop for 50-80 ms;
    # the started router freezes those objects once, after it listens
    sim = make_sim(name="a")
    port = free_port()
    args = ["--port", str(port), "--data-dir", str(tmp_path / "d"), "--log-level", "debug"]
    router = start(routers, tmp_path, args, HERD_NODES=nodes_env(sim))
    router.wait_for_line(r"start-up objects kept out of the cyclic GC: \d+")
    frozen = int(re.search(r"kept out of the cyclic GC: (\d+)", router.text()).group(1))
    assert frozen > 10_000  # the modules, plugins and app: tens of thousands of objects
    assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200


def test_a_node_given_as_a_url_in_herd_nodes_is_served(
    make_sim, routers: list[HerdProcess], tmp_path: Path
) -> None:
    """The way a newcomer writes it first (as for OLLAMA_HOST): HERD_NODES=http://HOST:PORT."""
    sim = make_sim(name="a")
    port = free_port()
    args = ["--port", str(port), "--data-dir", str(tmp_path / "d")]
    router = start(routers, tmp_path, args, HERD_NODES=sim.url.removeprefix("http://"))
    router.wait_ready(f"http://127.0.0.1:{port}")
    reply = httpx.post(
        f"http://127.0.0.1:{port}/api/chat",
        json={"model": "llama3.2:3b", "messages": [{"role": "user", "content": "hi"}]},
        timeout=30,
    )
    assert reply.status_code == 200
    assert reply.headers["x-herd-node"] == sim.url.removeprefix("http://")  # host:port


def test_a_damaged_trace_store_is_set_aside_and_port_0_is_said_as_bound(
    routers: list[HerdProcess], tmp_path: Path
) -> None:
    """A crash left the trace store unreadable: the router starts anyway, with a new store,
    and says where the old file is. Asked for port 0, it says the port it got."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "herd.duckdb").write_bytes(b"\x00" * 4096)  # (what a crash mid-write can leave)
    router = start(
        routers,
        tmp_path,
        ["--port", "0", "--data-dir", str(data)],
        HERD_FLEET__DISCOVER_LOCAL="false",
    )
    port = int(router.wait_for_line(r"listening on http://127\.0\.0\.1:(\d+)").group(1))
    assert port != 0
    assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200
    warning = next(x for x in router.text().splitlines() if "damaged" in x)
    kept = [p.name for p in data.iterdir() if ".damaged-" in p.name]
    assert len(kept) == 1 and kept[0] in warning and "WARNING" in warning


def test_idle_client_connections_stay_open_for_limits_keep_alive_s(
    routers: list[HerdProcess], tmp_path: Path
) -> None:
    """An idle kept-alive connection is closed after ``limits.keep_alive_s`` (120 s by
    default: longer than clients keep theirs, so none sends on a connection being closed;
    uvicorn's own 5 s raced aiohttp's 15 s under think time)."""
    from herd.settings import LimitSettings

    assert LimitSettings().keep_alive_s == 120.0
    port = free_port()
    router = start(
        routers,
        tmp_path,
        ["--port", str(port), "--data-dir", str(tmp_path / "d")],
        HERD_FLEET__DISCOVER_LOCAL="false",
        HERD_LIMITS__KEEP_ALIVE_S="1.5",
    )
    router.wait_for_line(r"listening on")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        for _ in range(2):  # the same connection serves a second request after 0.5 s idle
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: herd\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
            time.sleep(0.5)
        started = time.monotonic()
        assert sock.recv(65536) == b""  # closed by the router once idle for 1.5 s
        assert 0.5 < time.monotonic() - started < 5.0
