"""The deployment files: LICENSE, Dockerfile, compose.yaml and the systemd units stay true."""

from __future__ import annotations

import getpass
import json
import re
import shlex
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import httpx
import pytest
import yaml
from herd._engine.config import load_config
from herd_node.settings import load_agent_settings
from herd_sim.cli import build_parser

from tests.core.processes import free_port

ROOT = Path(__file__).parents[2]
SYSTEMD = ROOT / "contrib" / "systemd"
BIN = Path(sys.executable).parent


def env_file(path: Path) -> dict[str, str]:
    pairs = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value.strip()
    return pairs


def test_license_is_the_mit_license_pyproject_names() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT"
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License") and "WITHOUT WARRANTY OF ANY KIND" in text


def dockerfile_healthcheck() -> list[str]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    match = re.search(r"^HEALTHCHECK .*?CMD (\[.*\])\s*$", text, re.M)
    assert match, "the Dockerfile has no HEALTHCHECK ... CMD [...]"
    return json.loads(match.group(1))


def test_dockerfile_runs_as_a_user_and_checks_health() -> None:
    text = (ROOT / "Dockerfile").read_text()
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and users[-1] not in ("root", "0")
    assert re.search(r"^EXPOSE 11435$", text, re.M)
    assert re.search(r'^ENTRYPOINT \["herd"\]$', text, re.M)


def test_the_image_build_copies_everything_the_wheel_needs() -> None:
    text = (ROOT / "Dockerfile").read_text()
    build_stage = re.split(r"^FROM ", text, flags=re.M)[1]  # the first stage builds the wheel
    copied = []  # what lands in the build directory, by its name there
    for line in re.findall(r"^COPY (?!--from)(.+)$", build_stage, re.M):
        *sources, dest = line.split()
        copied += sources if dest in ("./", ".") else [dest.rstrip("/")]
        if dest not in ("./", "."):
            assert sources == [dest.rstrip("/")], line  # a directory keeps its name
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    needed = [
        *project["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"],
        project["project"]["readme"],
        "pyproject.toml",
        "LICENSE",
    ]
    ignored = (ROOT / ".dockerignore").read_text().split()
    for path in needed:
        assert any(path == c or path.startswith(c.rstrip("/") + "/") for c in copied), path
        assert path.split("/")[0] not in ignored, path


def test_the_healthcheck_command_passes_on_a_router_and_fails_without_one(
    make_router,
) -> None:
    command = dockerfile_healthcheck()
    assert command[0] == "python"
    router = make_router(nodes=[])
    check = [sys.executable, *command[1:]]
    ok = subprocess.run(check, env={"HERD_PORT": str(router.port)}, timeout=30)
    assert ok.returncode == 0
    down = subprocess.run(check, env={"HERD_PORT": str(free_port())}, capture_output=True)
    assert down.returncode != 0


def container_engine() -> str | None:
    docker = shutil.which("docker")
    if docker is None:
        return "no docker client on this machine"
    info = subprocess.run([docker, "info"], capture_output=True, text=True, timeout=60)
    if info.returncode != 0:
        return "docker client present but no container engine runs (docker info failed)"
    return None


def test_the_image_builds_runs_as_non_root_and_becomes_healthy(make_sim) -> None:
    why_not = container_engine()
    if why_not:
        pytest.skip(why_not)
    tag = "herd-test:ci"
    subprocess.run(["docker", "build", "-q", "-t", tag, str(ROOT)], check=True, timeout=1800)
    uid = subprocess.run(
        ["docker", "run", "--rm", "--entrypoint", "id", tag, "-u"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert uid.stdout.strip() != "0"
    sim = make_sim(name="a")
    port = free_port()
    env = {
        "HERD_HOST": "127.0.0.1",
        "HERD_PORT": str(port),
        "HERD_NODES": f'[{{name: a, url: "{sim.url}"}}]',
    }
    flags = [f"-e{k}={v}" for k, v in env.items()]
    run = ["docker", "run", "-d", "--rm", "--network", "host", *flags, tag]
    container = subprocess.run(run, capture_output=True, text=True, check=True).stdout.strip()
    try:
        deadline = time.monotonic() + 180
        health = ""
        while time.monotonic() < deadline and health != "healthy":
            inspect = ["docker", "inspect", "-f", "{{.State.Health.Status}}", container]
            health = subprocess.run(inspect, capture_output=True, text=True).stdout.strip()
            time.sleep(1)
        assert health == "healthy"
        assert httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=10).status_code == 200
    finally:
        subprocess.run(["docker", "rm", "-f", container], capture_output=True)


def test_compose_starts_herd_over_three_emulated_nodes() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    sims = {name: s for name, s in services.items() if s.get("entrypoint", [""])[0] == "herd-sim"}
    assert len(sims) == 3
    for name, service in sims.items():
        args = build_parser().parse_args(service["entrypoint"][1:])
        assert args.host == "0.0.0.0" and args.name == name
    router = services["herd"]
    assert "11435:11435" in router["ports"][0]
    loaded = load_config(None, env=router["environment"])
    assert loaded.ignored == []
    nodes = {n.name: n.url for n in loaded.settings.nodes}
    assert nodes == {name: f"http://{name}:{sims[name]['entrypoint'][4]}" for name in sims}
    assert set(router["depends_on"]) == set(sims)


def unit(name: str) -> dict[str, dict[str, str]]:
    sections: dict[str, dict[str, str]] = {}
    current = ""
    for line in (SYSTEMD / name).read_text().splitlines():
        line = line.strip()
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1]
            sections[current] = {}
        elif line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            sections[current][key] = value
    return sections


@pytest.mark.parametrize("name", ["herd.service", "herd-node.service"])
def test_systemd_units_verify(name: str, tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    text = (SYSTEMD / name).read_text().replace("/opt/herd/bin/", f"{BIN}/")
    user = getpass.getuser()
    text = re.sub(r"^(User|Group)=.*$", rf"\1={user}", text, flags=re.M)
    copy = tmp_path / name
    copy.write_text(text)
    done = subprocess.run([analyze, "verify", str(copy)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "Unknown" not in done.stderr and "ignoring" not in done.stderr, done.stderr


def test_the_router_unit_its_files_and_flags_agree(tmp_path: Path) -> None:
    service = unit("herd.service")["Service"]
    assert service["EnvironmentFile"] == "/etc/herd/herd.env"
    command = shlex.split(service["ExecStart"])
    assert command[:3] == ["/opt/herd/bin/herd", "--config", "/etc/herd/herd.yaml"]
    assert service["User"] == "herd"
    env = env_file(SYSTEMD / "herd.env.example")
    loaded = load_config(SYSTEMD / "herd.yaml.example", env=env)
    assert loaded.ignored == [] and loaded.kubernetes == []
    assert loaded.settings.auth.node_token and loaded.settings.auth.admin_key
    assert loaded.settings.data_dir in service["ReadWritePaths"].split()


def test_the_agent_unit_and_its_env_file_agree() -> None:
    service = unit("herd-node.service")["Service"]
    assert service["EnvironmentFile"] == "/etc/herd/node.env"
    assert service["ExecStart"] == "/opt/herd/bin/herd-node"
    env = env_file(SYSTEMD / "node.env.example")
    settings = load_agent_settings([], env=env)
    assert settings.router == env["HERD_NODE_ROUTER"] and settings.name == env["HERD_NODE_NAME"]


def test_deploy_doc_points_at_the_shipped_files() -> None:
    page = (ROOT / "docs" / "deploy.md").read_text()
    for path in (
        "contrib/systemd/herd.service",
        "contrib/systemd/herd-node.service",
        "contrib/systemd/herd.env.example",
        "contrib/systemd/node.env.example",
        "Dockerfile",
        "compose.yaml",
        "/readyz",
    ):
        assert path in page, path
