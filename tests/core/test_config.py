"""Configuration: YAML, environment and flags, and errors that name the key."""

from __future__ import annotations

import re
from pathlib import Path

import msgspec
import pytest
from herd._engine.cli import main
from herd._engine.config import ConfigError, load_settings
from herd.settings import Settings


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "herd.yaml"
    path.write_text(text)
    return path


def test_defaults_need_no_file() -> None:
    settings = load_settings(None, env={})
    assert settings.host == "127.0.0.1"
    assert settings.port == 11435
    assert settings.data_dir == "~/.herd"
    assert settings.nodes == []


def test_yaml_nodes_default_to_ollama_type(tmp_path: Path) -> None:
    path = write(tmp_path, "nodes:\n  - {name: a, url: 'http://127.0.0.1:1'}\nport: 9000\n")
    settings = load_settings(path, env={})
    assert settings.port == 9000
    assert settings.nodes[0].type == "ollama"


def test_unknown_key_names_key_line_and_known_keys(tmp_path: Path) -> None:
    path = write(tmp_path, "port: 8080\nrouting:\n  max_retrys: 3\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    message = str(info.value)
    assert "line 3" in message
    assert "routing.max_retrys" in message
    assert "max_retries" in message


def test_wrong_type_names_key_and_its_meaning(tmp_path: Path) -> None:
    path = write(tmp_path, "nodes:\n  - name: a\n    url: 5\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    message = str(info.value)
    assert "nodes[0].url" in message
    assert "line 3" in message
    assert "Base URL" in message


def test_invalid_yaml_is_a_config_error(tmp_path: Path) -> None:
    path = write(tmp_path, "nodes: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(path, env={})


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(tmp_path / "nope.yaml", env={})


def test_environment_overrides_yaml_and_flags_override_environment(tmp_path: Path) -> None:
    path = write(tmp_path, "port: 9000\nrouting: {max_retries: 1}\n")
    env = {"HERD_PORT": "9100", "HERD_ROUTING__MAX_RETRIES": "4", "HERD_HOST": "127.0.0.2"}
    settings = load_settings(path, env=env, overrides={"port": 9200, "host": None})
    assert settings.port == 9200
    assert settings.host == "127.0.0.2"
    assert settings.routing.max_retries == 4


def test_environment_can_set_nodes_as_yaml() -> None:
    env = {"HERD_NODES": '[{name: a, url: "http://127.0.0.1:1"}]'}
    assert load_settings(None, env=env).nodes[0].name == "a"


def test_bad_environment_value_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="port"):
        load_settings(None, env={"HERD_PORT": "high"})


def test_cli_reports_config_error_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "prot: 1\n")
    assert main(["--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "unknown key `prot`" in err
    assert "Traceback" not in err


def _all_keys(struct: type, prefix: str = "") -> list[str]:
    keys = []
    for field in msgspec.structs.fields(struct):
        keys.append(prefix + field.name)
        tp = field.type
        while hasattr(tp, "__metadata__"):
            tp = tp.__origin__
        args = getattr(tp, "__args__", ())
        if getattr(tp, "__origin__", None) is list and args:
            tp = args[0]
        if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
            keys.extend(_all_keys(tp, prefix + field.name + "."))
    return keys


def test_configuration_page_names_every_key() -> None:
    page = (Path(__file__).parents[2] / "docs" / "configuration.md").read_text()
    documented = set(re.findall(r"`([a-z_.]+)`", page))
    missing = [key for key in _all_keys(Settings) if key not in documented]
    assert not missing, f"docs/configuration.md does not document: {missing}"


def test_node_names_are_checked_with_their_line(tmp_path: Path) -> None:
    twice = write(
        tmp_path, "nodes:\n  - {name: a, url: 'http://x:1'}\n  - {name: a, url: 'http://y:1'}\n"
    )
    with pytest.raises(ConfigError, match=r"line 3: nodes\[1\].name: two nodes are named 'a'"):
        load_settings(twice)
    empty = write(tmp_path, "nodes:\n  - {name: '', url: 'http://x:1'}\n")
    with pytest.raises(ConfigError, match=r"line 2: nodes\[0\].name: a node needs a name"):
        load_settings(empty)


@pytest.mark.parametrize("command", [["check-config"], ["--port", "1"]])
@pytest.mark.parametrize(
    ("node", "error"),
    [
        (
            "{name: a, url: 'http://x:1', type: vllm}",
            r"line 2: nodes\[0\].type: unknown type 'vllm'",
        ),
        (
            "{name: a, url: 'http://x:1', type: openai, options: {api_key: [1]}}",
            r"line 2: nodes\[0\].options: Expected `str`, got `array`",
        ),
        (
            "{name: a, url: 'http://x:1', services: [{type: whisper, url: 'http://x:2'}]}",
            r"nodes\[0\].services\[0\].type: unknown type 'whisper'",
        ),
    ],
)
def test_backend_types_and_options_are_config_errors(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    command: list[str],
    node: str,
    error: str,
) -> None:
    # check-config passes only what starts; herd itself says so before it binds (exit 2)
    from herd._engine import logs

    # herd sets up the process's logging on the way: not this test process's (a handler on
    # this test's captured stderr would outlive it, and later tests' threads log to it)
    monkeypatch.setattr(logs, "configure_logging", lambda *args, **kwargs: None)
    path = write(tmp_path, f"nodes:\n  - {node}\n")
    assert main([*command, "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert re.search(error, err), err
    assert err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # PyYAML's own text carries `in "<unicode string>"` and code snippets; ours is one line
        (
            "nodes:\n  - {name: a, url: 'http://x:1'\n  port: 1\n",
            "line 3, column 3: not valid YAML: expected ',' or '}', but got '<scalar>' "
            "(while parsing a flow mapping from line 2)",
        ),
        # the missing key is named, with its meaning (not `[0]`'s)
        (
            "nodes:\n  - {name: a}\n",
            "line 2: nodes[0].url: required, but missing -- `url` is: Base URL",
        ),
        ("log_format: xml\n", "line 1: log_format: 'xml' is not one of text, json"),
        (
            "nodes:\n  - {name: a, url: 'http://'}\n",
            "'http://' is not a URL: it needs a scheme and a host, e.g. http://HOST:11434",
        ),
    ],
)
def test_config_errors_read_as_one_plain_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, text), env={})
    assert message in str(caught.value)
    assert "\n" not in str(caught.value) and "<unicode string>" not in str(caught.value)


def test_ctrl_c_before_the_server_runs_is_no_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Ctrl-C while herd still imports or loads plugins (seconds on a busy machine)."""
    import herd._engine.cli as cli

    def interrupted(argv: list[str]) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "serve", interrupted)
    assert main([]) == 130
    assert capsys.readouterr().err == "herd: interrupted\n"
