"""The environment as configuration: unknown and Kubernetes variables, blame, YAML, URLs."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from herd._engine.config import ConfigError, load_config, load_settings

KUBERNETES_LINKS = {
    "HERD_PORT": "tcp://10.0.0.1:11435",
    "HERD_SERVICE_HOST": "10.0.0.1",
    "HERD_SERVICE_PORT": "11435",
    "HERD_SERVICE_PORT_HTTP": "11435",
    "HERD_PORT_11435_TCP": "tcp://10.0.0.1:11435",
    "HERD_PORT_11435_TCP_PROTO": "tcp",
    "HERD_PORT_11435_TCP_PORT": "11435",
    "HERD_PORT_11435_TCP_ADDR": "10.0.0.1",
}


def test_variables_that_name_no_setting_are_ignored_with_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    env = {"HERD_BIN": "/opt/herd/bin", "HERD_ROUTING__MAX_RETRYS": "3", "HERD_PORT": "9001"}
    with caplog.at_level(logging.WARNING, logger="herd.config"):
        settings = load_settings(None, env=env)
    assert settings.port == 9001
    assert settings.routing.max_retries == 2
    warnings = [r.getMessage() for r in caplog.records if r.name == "herd.config"]
    assert len(warnings) == 1
    assert "HERD_BIN" in warnings[0] and "HERD_ROUTING__MAX_RETRYS" in warnings[0]
    assert "HERD_ROUTING__MAX_RETRYS (did you mean HERD_ROUTING__MAX_RETRIES?)" in warnings[0]
    assert "HERD_BIN (" not in warnings[0]  # (nothing like it: no guess)


@pytest.mark.parametrize(
    ("typed", "meant"),
    [
        ("HERD_NODE", "HERD_NODES"),
        ("HERD_ROUTING_MAX_RETRIES", "HERD_ROUTING__MAX_RETRIES"),  # one underscore, not two
        ("HERD_DATADIR", "HERD_DATA_DIR"),
        ("HERD_LOGLEVEL", "HERD_LOG_LEVEL"),
    ],
)
def test_a_near_miss_is_told_the_variable_it_likely_meant(typed: str, meant: str) -> None:
    loaded = load_config(None, env={typed: "1"})
    assert loaded.ignored == [typed]
    assert f"{typed} (did you mean {meant}?)" in loaded.warning()


def test_kubernetes_service_links_never_stop_the_router(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="herd.config"):
        loaded = load_config(None, env=KUBERNETES_LINKS)
    assert loaded.settings.port == 11435
    assert sorted(loaded.kubernetes) == sorted(KUBERNETES_LINKS)
    assert loaded.ignored == []
    assert not caplog.records


def test_a_real_port_variable_still_sets_the_port() -> None:
    assert load_settings(None, env={**KUBERNETES_LINKS, "HERD_PORT": "8080"}).port == 8080


def test_an_error_caused_by_a_variable_names_the_variable(tmp_path: Path) -> None:
    path = tmp_path / "herd.yaml"
    path.write_text("port: 9000\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={"HERD_ROUTING__MAX_RETRIES": "many"})
    message = str(info.value)
    assert "environment variable HERD_ROUTING__MAX_RETRIES" in message
    assert "routing.max_retries" in message
    assert "<defaults>" not in message and "herd.yaml" not in message


def test_an_error_in_a_nested_variable_value_names_the_variable() -> None:
    env = {"HERD_NODES": '[{name: a, url: "http://127.0.0.1:1", tagz: [x]}]'}
    with pytest.raises(ConfigError, match="environment variable HERD_NODES: nodes\\[0\\]"):
        load_settings(None, env=env)


def test_invalid_yaml_in_a_variable_is_an_error_naming_it() -> None:
    with pytest.raises(ConfigError, match="environment variable HERD_NODES: not valid YAML"):
        load_settings(None, env={"HERD_NODES": "[{name: a, url: "})


def test_string_settings_take_the_value_as_written() -> None:
    env = {"HERD_AUTH__ADMIN_KEY": "*not-an-alias: [x", "HERD_HOST": "0.0.0.0"}
    settings = load_settings(None, env=env)
    assert settings.auth.admin_key == "*not-an-alias: [x"
    assert settings.host == "0.0.0.0"


def test_free_form_maps_take_deeper_keys() -> None:
    env = {"HERD_ROUTING__SIGNALS__THERMAL__WEIGHT": "3"}
    assert load_settings(None, env=env).routing.signals == {"thermal": {"weight": 3}}


def test_the_cli_variables_are_not_settings_and_not_warned_about(
    caplog: pytest.LogCaptureFixture,
) -> None:
    env = {
        "HERD_ROUTER": "http://10.0.0.2:11435",
        "HERD_ADMIN_KEY": "k" * 12,
        "HERD_API_KEY": "a" * 12,
    }
    with caplog.at_level(logging.WARNING, logger="herd.config"):
        loaded = load_config(None, env=env)
    assert loaded.ignored == [] and not caplog.records
    assert loaded.settings.auth.admin_key == ""


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("studio:11434", "needs a scheme"),
        ("10.0.0.5:11434", "needs a scheme"),
        ("ftp://10.0.0.5", "http or https"),
        ("http://10.0.0.5:port", "port is not a number"),
        ("http://", "needs a scheme and a host"),
    ],
)
def test_node_urls_are_checked_when_loading(tmp_path: Path, url: str, why: str) -> None:
    path = tmp_path / "herd.yaml"
    path.write_text(f"port: 9000\nnodes:\n  - name: a\n    url: '{url}'\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    message = str(info.value)
    assert "line 4" in message and "nodes[0].url" in message and why in message


def test_service_urls_are_checked_too() -> None:
    nodes = '[{name: a, url: "http://h:1", services: [{type: openai-compat, url: "h:2"}]}]'
    with pytest.raises(ConfigError, match=r"nodes\[0\].services\[0\].url"):
        load_settings(None, env={"HERD_NODES": nodes})


def test_log_level_is_checked_and_blamed_on_its_source() -> None:
    with pytest.raises(ConfigError, match="flag --log-level: log_level: 'loud' is not a log"):
        load_settings(None, env={}, overrides={"log_level": "loud"})
    with pytest.raises(ConfigError, match="environment variable HERD_LOG_LEVEL"):
        load_settings(None, env={"HERD_LOG_LEVEL": "loud"})
    assert load_settings(None, env={"HERD_LOG_LEVEL": "DEBUG"}).log_level == "debug"


def test_origin_says_where_each_value_came_from(tmp_path: Path) -> None:
    path = tmp_path / "herd.yaml"
    path.write_text(
        "port: 9000\nrouting:\n  max_retries: 1\nnodes:\n  - {name: a, url: 'http://h:1'}\n"
    )
    loaded = load_config(
        path, env={"HERD_ROUTING__MAX_RETRIES": "4"}, overrides={"host": "127.0.0.2"}
    )
    assert loaded.origin(["port"]) == f"file {path}:1"
    assert loaded.origin(["routing", "max_retries"]) == "env HERD_ROUTING__MAX_RETRIES"
    assert loaded.origin(["host"]) == "flag --host"
    assert loaded.origin(["nodes", "[0]", "url"]) == f"file {path}:5"
    assert loaded.origin(["fleet", "poll_interval"]) == "default"


def test_unreadable_files_are_config_errors(tmp_path: Path) -> None:
    binary = tmp_path / "herd.yaml"
    binary.write_bytes(b"\xff\xfe\x00port")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_settings(binary, env={})
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings(tmp_path, env={})


def test_a_section_check_names_the_variable_inside_it() -> None:
    env = {"HERD_AUTH__API_KEYS": '[{name: a, key: "12345678"}, {name: a, key: "87654321"}]'}
    with pytest.raises(ConfigError) as info:
        load_settings(None, env=env)
    message = str(info.value)
    assert "environment variable HERD_AUTH__API_KEYS" in message and "same name" in message
    assert "<defaults>" not in message


@pytest.mark.parametrize(
    ("value", "nodes"),
    [
        ("http://10.0.0.5:11434", [("10.0.0.5", "http://10.0.0.5:11434")]),
        (
            "http://10.0.0.5:11434,https://big.example",
            [("10.0.0.5", "http://10.0.0.5:11434"), ("big.example", "https://big.example")],
        ),
        # written as for OLLAMA_HOST: http, and Ollama's port when none is given
        (
            "studio gpu:11500",
            [("studio", "http://studio:11434"), ("gpu:11500", "http://gpu:11500")],
        ),
        ("[::1]:11434", [("::1", "http://[::1]:11434")]),
        ('{name: a, url: "http://h:1"}', [("a", "http://h:1")]),  # one node map
        ('[{name: a, url: "http://h:1"}]', [("a", "http://h:1")]),
        ("", []),
    ],
)
def test_nodes_from_the_environment_may_be_urls(value: str, nodes: list[tuple[str, str]]) -> None:
    settings = load_settings(None, env={"HERD_NODES": value})
    assert [(node.name, node.url) for node in settings.nodes] == nodes


def test_node_urls_in_a_file_may_stand_for_nodes(tmp_path: Path) -> None:
    path = tmp_path / "herd.yaml"
    path.write_text('nodes:\n  - http://10.0.0.5:11434\n  - {name: big, url: "http://b:1"}\n')
    settings = load_settings(path, env={})
    assert [(n.name, n.url) for n in settings.nodes] == [
        ("10.0.0.5", "http://10.0.0.5:11434"),
        ("big", "http://b:1"),
    ]


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("http://[::1", r"nodes\[0\]\.url: 'http://\[::1' is not a URL"),
        ("http://a:1,http://a:1", "two nodes are named 'a:1'"),
        ("[{name: a, url: x", "not valid YAML"),  # a broken map is YAML's error, not a URL's
    ],
)
def test_a_bad_node_url_in_the_environment_is_named(value: str, why: str) -> None:
    with pytest.raises(ConfigError, match=f"environment variable HERD_NODES: .*{why}"):
        load_settings(None, env={"HERD_NODES": value})
