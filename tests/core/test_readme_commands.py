"""The README's two commands: read from the README itself, so docs and CI cannot drift.

Each must work as the first command in a fresh clone, with the pip that ``python3 -m venv``
ships (23.2 here), which cannot resolve the example plugin's dependency on the project it
installs in the same call: so the example plugin gets a pip call of its own.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

ROOT = Path(__file__).parents[2]


def command_after(marker: str, text: str | None = None) -> str:
    """The one-line ``sh`` block that follows ``<!-- marker -->``."""
    text = text if text is not None else (ROOT / "README.md").read_text()
    match = re.search(rf"<!-- {marker} -->\n```sh\n(.+)\n```", text)
    assert match, f"README has no ```sh block after <!-- {marker} -->"
    return match.group(1)


def steps(command: str) -> list[list[str]]:
    return [shlex.split(step) for step in command.split(" && ")]


def pip_installs(command: str) -> list[list[str]]:
    return [s[3:] for s in steps(command) if s[:3] == [".venv/bin/pip", "install", "-q"]]


def test_start_command_makes_a_venv_installs_and_starts() -> None:
    start = steps(command_after("start-command"))
    assert start[0] == ["python3", "-m", "venv", ".venv"]
    assert start[1] == [".venv/bin/pip", "install", "-q", "-e", "."]
    assert start[-1] == [".venv/bin/herd"]


def test_test_command_installs_the_example_plugin_in_a_pip_call_of_its_own() -> None:
    command = command_after("test-command")
    assert steps(command)[0] == ["python3", "-m", "venv", ".venv"]
    installs = pip_installs(command)
    assert installs[0] == ["-e", ".[test]"]
    assert ["./docs/examples/herd-gpu-temp"] in installs
    for args in installs:  # pip 23.2 cannot match -e . against the plugin's dependency
        assert not ("./docs/examples/herd-gpu-temp" in args and len(args) > 1), args
    assert steps(command)[-1] == [".venv/bin/python", "-m", "pytest"]


def test_ci_runs_the_test_command_verbatim_before_installing_anything() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert "awk '/<!-- test-command -->/{getline; getline; print; exit}' README.md" in ci
    run_at = ci.index('bash -c "$test_command"')
    assert ci.index("rm -rf .venv") < run_at
    # nothing before the README's command installs or creates a venv
    before = ci[:run_at]
    assert "pip install" not in before and "python3 -m venv" not in before
    # afterwards only the tests that need the extras run, with the extras required
    after = ci[run_at:]
    assert "-m 'real_models or browser or redis or proxy'" in after
    for required in ("REAL_MODELS", "BROWSER", "REDIS", "PROXY"):
        assert f"HERD_REQUIRE_{required}=1" in after
    assert after.count("python -m pytest") == 1


def test_ci_extracts_exactly_the_readme_command() -> None:
    """The awk line in .ci/run takes the line two below the marker: the command itself."""
    lines = (ROOT / "README.md").read_text().splitlines()
    at = lines.index("<!-- test-command -->")
    assert lines[at + 1] == "```sh"
    assert lines[at + 2] == command_after("test-command")


def test_getting_started_shows_the_same_start_command() -> None:
    page = (ROOT / "docs" / "getting-started.md").read_text()
    assert command_after("start-command") in page
