"""`herd check-config`: validates, prints every value with its source, redacts secrets."""

from __future__ import annotations

from pathlib import Path

from tests.core.processes import clean_env, herd_run, run_herd


def settings_lines(stdout: str) -> dict[str, tuple[str, str]]:
    """``key -> (value, source)`` from check-config's output."""
    out = {}
    for line in stdout.splitlines():
        setting, _, source = line.partition("  # ")
        key, _, value = setting.partition(": ")
        out[key.strip()] = (value.strip(), source.strip())
    return out


def test_prints_each_value_with_where_it_came_from(tmp_path: Path) -> None:
    path = tmp_path / "herd.yaml"
    path.write_text(
        "port: 9000\n"
        "nodes:\n"
        "  - {name: studio, url: 'http://10.0.0.5:11434'}\n"
        "  - {name: proxied, url: 'https://herd:url-secret-321@gpu.example.com'}\n"
        "cluster: {redis_url: 'redis://:redis-secret-654@10.0.0.9:6379/0'}\n"
        "auth:\n"
        "  api_keys:\n"
        "    - {name: ci, key: 'file-secret-123'}\n"
    )
    env = clean_env(
        HERD_ROUTING__MAX_RETRIES="4",
        HERD_AUTH__ADMIN_KEY="env-secret-456",
        HERD_NODE_TOKEN="node-secret-789",
        HERD_BIN="/opt/herd/bin",
    )
    done = herd_run(["check-config", str(path), "--log-level", "debug"], env)
    stdout, err = done.stdout, done.stderr
    assert done.returncode == 0, err
    lines = settings_lines(stdout)
    assert lines["port"] == ("9000", f"file {path}:1")
    assert lines["nodes[0].url"] == ('"http://10.0.0.5:11434"', f"file {path}:3")
    assert lines["routing.max_retries"] == ("4", "env HERD_ROUTING__MAX_RETRIES")
    assert lines["log_level"] == ('"debug"', "flag --log-level")
    assert lines["host"] == ('"127.0.0.1"', "default")
    assert lines["auth.admin_key"] == ("<redacted>", "env HERD_AUTH__ADMIN_KEY")
    assert lines["auth.node_token"] == ("<redacted>", "env HERD_NODE_TOKEN")
    assert lines["auth.api_keys[0].key"] == ("<redacted>", f"file {path}:8")
    assert lines["nodes[1].url"][0] == '"https://herd:***@gpu.example.com"'
    assert lines["cluster.redis_url"][0] == '"redis://:***@10.0.0.9:6379/0"'
    assert lines["auth.api_keys[0].name"][0] == '"ci"'
    secrets = ("file-secret-123", "env-secret-456", "node-secret-789", "url-secret-321")
    for secret in (*secrets, "redis-secret-654"):
        assert secret not in stdout and secret not in err
    assert "HERD_BIN" in err and "configuration is valid" in err


def test_nodes_given_as_urls_come_from_their_line_and_keep_secrets(tmp_path: Path) -> None:
    path = tmp_path / "herd.yaml"
    path.write_text(
        "nodes:\n  - http://10.0.0.5:11434\n  - https://u:url-secret-1@gpu.example.com\n"
    )
    done = herd_run(["check-config", str(path)], clean_env())
    assert done.returncode == 0, done.stderr
    lines = settings_lines(done.stdout)
    assert lines["nodes[0].name"] == ('"10.0.0.5"', f"file {path}:2")
    assert lines["nodes[1].name"] == ('"gpu.example.com"', f"file {path}:3")
    assert lines["nodes[1].url"][0] == '"https://u:***@gpu.example.com"'
    assert "url-secret-1" not in done.stdout + done.stderr
    # the sources line up, but a long value (the allowed origins) does not push them all out
    assert max(line.index("  # ") for line in done.stdout.splitlines() if "  # " in line) > 60
    assert done.stdout.splitlines()[0].index("  # ") <= 60


def test_an_invalid_configuration_is_one_line_and_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "herd.yaml"
    path.write_text("routing:\n  signals: {no_such_signal: {weight: 1}}\n")
    code, stderr = run_herd(["check-config", str(path)], clean_env())
    assert code == 2
    assert stderr.strip().count("\n") == 0 and "no_such_signal" in stderr
    code, stderr = run_herd(["check-config"], clean_env(HERD_PORT="[1"))
    assert code == 2 and "environment variable HERD_PORT: not valid YAML" in stderr


def test_sink_options_are_checked_as_at_start(tmp_path: Path) -> None:
    path = tmp_path / "herd.yaml"
    path.write_text("plugins:\n  options:\n    prometheus: {max_models: 0}\n")
    code, stderr = run_herd(["check-config", str(path)], clean_env())
    assert code == 2 and "plugins.options.prometheus" in stderr
