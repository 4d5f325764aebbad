"""The agent skill (skills/herd/SKILL.md): its format, and every command in it runs for real
against a router over emulated nodes, so the skill stays true."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml

ROOT = Path(__file__).parents[2]
SKILL = ROOT / "skills" / "herd" / "SKILL.md"
ADMIN = "agent-test-admin-key"
COMMAND_WORDS = ("curl", "herd", "export")


def front_matter_and_body() -> tuple[dict, str]:
    text = SKILL.read_text()
    match = re.match(r"^---\n(.*?)\n---\n(.*)$", text, re.S)
    assert match, "SKILL.md must start with YAML front matter between --- lines"
    return yaml.safe_load(match.group(1)), match.group(2)


def shell_blocks() -> list[str]:
    _, body = front_matter_and_body()
    return re.findall(r"```sh\n(.*?)```", body, re.S)


def test_the_skill_has_agent_skills_front_matter() -> None:
    meta, body = front_matter_and_body()
    assert meta["name"] == SKILL.parent.name == "herd"
    assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", meta["name"]) and len(meta["name"]) <= 64
    assert 0 < len(meta["description"]) <= 1024
    assert body.lstrip().startswith("# ")


def test_the_skill_states_the_guardrails() -> None:
    _, body = front_matter_and_body()
    assert "Never restart, stop or start the router or an agent" in body
    assert "Never pull, delete, copy or drain without the user's explicit confirmation" in body
    assert "HERD_ADMIN_KEY" in body


def test_every_command_is_one_of_the_allowed_tools() -> None:
    blocks = shell_blocks()
    assert len(blocks) >= 5
    for block in blocks:
        for line in block.splitlines():
            assert line.split()[0] in COMMAND_WORDS, line
            assert "systemctl" not in line and "kill" not in line


@pytest.fixture
def fleet(make_sim, make_router):
    studio = make_sim(name="studio")
    gaming = make_sim(name="gaming-pc")
    return make_router(nodes=[studio, gaming], auth={"admin_key": ADMIN})


def test_every_command_in_the_skill_runs(fleet) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HERD_", "OLLAMA_"))}
    env.update(
        HERD_ROUTER=fleet.url,
        HERD_ADMIN_KEY=ADMIN,
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
    )
    ran = 0
    for block in shell_blocks():
        for line in block.splitlines():
            done = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", f"{line}\n"],
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert done.returncode == 0, f"{line}\n{done.stdout}\n{done.stderr}"
            if not line.startswith("export "):
                assert done.stdout.strip(), line
            ran += 1
    assert ran >= 20
    # what the guarded commands did is real
    status = {n["name"]: n for n in httpx.get(fleet.url + "/fleet/status").json()["nodes"]}
    assert status["gaming-pc"]["draining"] is False  # drained, then undrained
    studio_models = {m["name"] for m in status["studio"]["models"]}
    assert "qwen2.5:7b" not in studio_models and "llama3.2:3b" in studio_models


def test_the_guarded_commands_need_the_admin_key(fleet) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HERD_", "OLLAMA_"))}
    herd = Path(sys.executable).with_name("herd")
    done = subprocess.run(
        [str(herd), "drain", "gaming-pc", "--yes", "--router", fleet.url],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1 and "401" in done.stderr


def test_the_agents_page_is_in_the_docs_and_points_at_the_skill() -> None:
    page = (ROOT / "docs" / "agents.md").read_text()
    assert "skills/herd/SKILL.md" in page and "auth.admin_key" in page
    nav = yaml.safe_load((ROOT / "mkdocs.yml").read_text().replace("!!python", "#"))["nav"]
    assert any("agents.md" in entry.values() for entry in nav)
