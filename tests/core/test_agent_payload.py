"""The heartbeat format, the agent's settings and the membership rules, without a network."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest
from herd._engine.config import load_settings
from herd._engine.fleet.membership import bearer_secret, registration_refusal, secret_matches
from herd.protocol.heartbeat import (
    PAYLOAD_VERSION,
    DiskModel,
    Heartbeat,
    HeartbeatReply,
    MachineInfo,
    decode_heartbeat,
    decode_reply,
    encode,
    models_digest,
)
from herd_node.node import NodeAgent, OllamaSnapshot
from herd_node.probes import MachineProbe
from herd_node.settings import (
    AgentSettings,
    AgentSettingsError,
    check_http_url,
    is_loopback_host,
    load_agent_settings,
    stated_ollama_url,
)


def test_heartbeat_without_version_or_optional_fields_is_version_one() -> None:
    beat = decode_heartbeat(b'{"name": "old", "ollama_url": "http://10.0.0.5:11434"}')
    assert beat.payload_version == 1
    assert beat.models is None and beat.loaded == []
    assert beat.machine == MachineInfo()
    assert beat.interval == 5.0 and not beat.draining


def test_newer_heartbeat_with_unknown_fields_decodes() -> None:
    body = encode(
        {
            "payload_version": PAYLOAD_VERSION + 3,
            "name": "new",
            "ollama_url": "http://10.0.0.5:11434",
            "npu": {"tops": 40},
            "machine": {"ram_total": 8, "fans": [1, 2], "gpus": [{"vram_total": 4, "x": 1}]},
            "models": [{"name": "a:1b", "size": 3, "shards": 2}],
        }
    )
    beat = decode_heartbeat(body)
    assert beat.payload_version == PAYLOAD_VERSION + 3
    assert beat.machine.ram_total == 8 and beat.machine.gpus[0].vram_total == 4
    assert beat.models == [DiskModel(name="a:1b", size=3)]


def test_reply_from_a_newer_router_decodes() -> None:
    reply = decode_reply(b'{"accepted": true, "node": "a", "payload_version": 7, "hint": 1}')
    assert reply == HeartbeatReply(node="a", payload_version=7)


def test_heartbeat_with_a_wrongly_typed_field_is_refused() -> None:
    with pytest.raises(msgspec.DecodeError):
        decode_heartbeat(b'{"name": "x", "ollama_url": "http://h:1", "interval": "soon"}')


def test_models_digest_ignores_order_and_sees_changes() -> None:
    a, b = DiskModel(name="a", size=1), DiskModel(name="b", size=2)
    assert models_digest([a, b]) == models_digest([b, a])
    assert models_digest([a, b]) != models_digest([a, DiskModel(name="b", size=3)])


def test_agent_resends_models_only_when_they_changed() -> None:
    agent = NodeAgent(AgentSettings(router="http://127.0.0.1:1", name="n"), machine=MachineInfo)
    snapshot = OllamaSnapshot(version="1", models=[DiskModel(name="a:1b", size=1)])
    first = agent._heartbeat(snapshot, MachineInfo(), draining=False)
    assert first.models == snapshot.models
    agent._acked_digest = first.models_digest
    assert agent._heartbeat(snapshot, MachineInfo(), draining=False).models is None
    snapshot.models.append(DiskModel(name="b:2b", size=2))
    assert len(agent._heartbeat(snapshot, MachineInfo(), draining=False).models or []) == 2


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("file:///etc/passwd", "http"),
        ("http+unix://%2Frun%2Follama.sock", "http"),
        ("unix:///run/ollama.sock", "http"),
        ("http://", "no host"),
        ("http://user:secret@10.0.0.5:11434", "user name"),
        ("http://10.0.0.5:11434/?next=x", "query"),
        ("http://10.0.0.5:99999", "URL"),
    ],
)
def test_ollama_url_must_be_http_to_a_host(url: str, problem: str) -> None:
    assert problem in (check_http_url(url) or "")


def test_good_ollama_urls_pass() -> None:
    for url in ("http://10.0.0.5:11434", "https://gpu.lan", "http://[::1]:11434/ollama"):
        assert check_http_url(url) is None


def test_secrets_compare_as_bearer_tokens() -> None:
    assert bearer_secret("Bearer abc ") == "abc"
    assert bearer_secret("Basic abc") == ""
    assert secret_matches("abc", "abc") and not secret_matches("abd", "abc")
    assert not secret_matches("", "abc")


def test_router_env_gives_node_token_and_ignores_agent_variables() -> None:
    env = {"HERD_NODE_TOKEN": "007", "HERD_NODE_ROUTER": "http://x:1", "HERD_NODE_NAME": "n"}
    settings = load_settings(None, env=env)
    assert settings.auth.node_token == "007"  # a string, not YAML's integer 7
    assert load_settings(None, env={"HERD_AUTH__ADMIN_KEY": "k"}).auth.admin_key == "k"


def test_open_router_without_token_refuses_agents() -> None:
    open_router = load_settings(None, env={}, overrides={"host": "0.0.0.0"})
    assert "auth.node_token" in registration_refusal(open_router)
    with_token = load_settings(None, env={"HERD_NODE_TOKEN": "t"}, overrides={"host": "0.0.0.0"})
    assert registration_refusal(with_token) == ""
    assert registration_refusal(load_settings(None, env={})) == ""


def test_agent_flags_beat_environment_which_beats_yaml(tmp_path: Path) -> None:
    config = tmp_path / "node.yaml"
    config.write_text("name: from-yaml\ninterval: 7\ntoken: yaml-token\nnum-parallel: 3\n")
    env = {"HERD_NODE_CONFIG": str(config), "HERD_NODE_NAME": "from-env", "HERD_NODE_TOKEN": "e"}
    settings = load_agent_settings(["--name", "from-flag"], env=env)
    assert settings.name == "from-flag"
    assert settings.token == "e"
    assert settings.interval == 7.0 and settings.num_parallel == 3
    assert settings.ollama == "http://127.0.0.1:11434"
    assert load_agent_settings([], env={}).name == socket.gethostname()


def test_agent_refuses_a_non_http_ollama_url() -> None:
    with pytest.raises(AgentSettingsError, match="--ollama"):
        load_agent_settings(["--ollama", "file:///tmp/x"], env={})
    with pytest.raises(AgentSettingsError, match="interval"):
        load_agent_settings([], env={"HERD_NODE_INTERVAL": "-1"})


def test_stated_url_is_advertise_or_ollama() -> None:
    local = AgentSettings(ollama="http://127.0.0.1:11434/")
    assert stated_ollama_url(local, "http://127.0.0.1:11435") == "http://127.0.0.1:11434"
    advertised = AgentSettings(advertise="http://10.1.2.3:11434")
    assert stated_ollama_url(advertised, "http://10.0.0.1:11435") == "http://10.1.2.3:11434"
    assert is_loopback_host("localhost") and is_loopback_host("[::1]")
    assert not is_loopback_host("0.0.0.0") and not is_loopback_host("gpu.lan")


def test_machine_probe_reads_this_machine_without_a_gpu() -> None:
    info = MachineProbe("/").read()
    assert info.cpu_count >= 1
    assert 0 < info.ram_available <= info.ram_total
    assert info.disk_total > 0
    assert isinstance(info.gpus, list)  # [] here: no NVIDIA driver, and no failure


def test_heartbeat_round_trips() -> None:
    beat = Heartbeat(name="n", ollama_url="http://h:1", machine=MachineInfo(cpu_count=2))
    assert decode_heartbeat(encode(beat)) == beat


def test_agent_does_not_load_the_router_stack() -> None:
    code = (
        "import sys, herd_node.cli, herd_node.node; "
        "print(sorted(m for m in ('litestar', 'aiohttp', 'uvicorn', 'duckdb') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_an_ollama_without_api_ps_or_api_version_is_still_read() -> None:
    import asyncio

    import httpx
    from herd_node.node import read_ollama

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/tags":
            return httpx.Response(200, json={"models": [{"name": "a:1b", "size": 1}]})
        return httpx.Response(404, text="404 page not found")

    async def read() -> OllamaSnapshot:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            return await read_ollama(client, "http://127.0.0.1:1")  # (mocked: nothing sent)

    snapshot = asyncio.run(read())
    assert not snapshot.error
    assert [m.name for m in snapshot.models] == ["a:1b"] and snapshot.loaded == []
