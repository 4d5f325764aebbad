"""herd-sim: command line, config files and the deterministic helpers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from herd.testing import EmulatedModel, SimConfig, expected_reply, parse_size
from herd_sim.cli import build_parser, config_from_args, is_loopback, model_from_spec
from herd_sim.models import GIB, config_from_mapping


def parse(*argv: str) -> SimConfig:
    return config_from_args(build_parser().parse_args(list(argv)))


def test_flags_override_the_defaults() -> None:
    config = parse(
        "--port",
        "11500",
        "--vram",
        "8",
        "--num-parallel",
        "2",
        "--gen-tps",
        "40",
        "--name",
        "box",
        "--keep-alive",
        "10m",
    )
    assert (config.port, config.vram_bytes, config.num_parallel) == (11500, 8 * GIB, 2)
    assert (config.gen_tps, config.name, config.keep_alive) == (40.0, "box", "10m")
    assert config.host == "127.0.0.1"


def test_model_flags_replace_the_default_models() -> None:
    config = parse("--model", "llama3.2:3b:1.5GB", "--model", "mystery:7b:4G")
    known, guessed = config.models
    assert (known.name, known.size, known.capabilities) == (
        "llama3.2:3b",
        1_500_000_000,
        ["completion", "tools"],
    )
    assert (guessed.name, guessed.size) == ("mystery:7b", 4_000_000_000)
    assert model_from_spec("my-embed:latest:300MB").capabilities == ["embedding"]
    with pytest.raises(ValueError):
        model_from_spec("no-size")


def test_a_yaml_config_is_read_and_flags_win(tmp_path: Path) -> None:
    path = tmp_path / "sim.yaml"
    path.write_text(
        "name: yaml-node\nvram_bytes: 6GiB\ngen_tps: 10\n"
        "models:\n  - {name: tiny:1b, size: 700MB, capabilities: [completion]}\n"
        "registry:\n  - {name: extra:2b, size: 1.5GB}\n"
    )
    config = parse("--config", str(path), "--gen-tps", "99")
    assert (config.name, config.vram_bytes, config.gen_tps) == ("yaml-node", 6 * GIB, 99.0)
    assert [m.name for m in config.models] == ["tiny:1b"]
    assert config.registry[0].size == 1_500_000_000


def test_unknown_config_keys_are_errors() -> None:
    with pytest.raises(ValueError, match="vram"):
        config_from_mapping({"vramm": 1})


def test_a_non_loopback_host_needs_the_host_flag(tmp_path: Path) -> None:
    path = tmp_path / "sim.yaml"
    path.write_text("host: 0.0.0.0\n")
    with pytest.raises(ValueError, match="--host"):
        parse("--config", str(path))
    assert parse("--config", str(path), "--host", "0.0.0.0").host == "0.0.0.0"
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("example.com")


def test_sizes_parse_in_decimal_and_binary_units() -> None:
    assert parse_size("2.0GB") == 2_000_000_000
    assert parse_size("512MiB") == 512 * 1024**2
    assert parse_size(1234) == 1234
    with pytest.raises(ValueError):
        parse_size("lots")


def test_config_values_are_validated() -> None:
    with pytest.raises(ValueError):
        SimConfig(num_parallel=0)
    with pytest.raises(ValueError):
        EmulatedModel(name="x", size=0)
    assert len(EmulatedModel(name="x", size=1).digest) == 64


def test_expected_reply_is_stable_and_prefix_consistent() -> None:
    long = expected_reply("llama3.2:3b", "hello", 30)
    assert expected_reply("llama3.2:3b", "hello", 10) == long[:10]
    assert expected_reply("LLAMA3.2:3B", "hello", 30) == long
    assert expected_reply("llama3.2:3b", "hello", 30, seed=1) != long
    assert expected_reply("llama3.2:3b", "hello", 30, request_seed=5) != long
    assert not long[0].startswith(" ") and all(token.startswith(" ") for token in long[1:])


def test_the_console_script_prints_its_url_and_serves() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "herd_sim.cli", "--port", "0", "--name", "cli"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("herd-sim cli listening on http://127.0.0.1:")
        url = line.split()[4]
        assert httpx.get(url + "/", timeout=10).text == "Ollama is running"
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0
