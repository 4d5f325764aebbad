"""``herd-sim``: run one emulated Ollama server from the command line.

Examples::

    herd-sim --port 11500
    herd-sim --port 11501 --vram 8 --gen-tps 40 --model llama3.2:3b:2.0GB --model qwen3:4b:2.5GB
    herd-sim --config sim.yaml --name gpu-box-2
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

import msgspec
import yaml
from herd.net import is_loopback_host, raise_open_files_limit

from herd_sim.models import (
    DEFAULT_MODELS,
    GIB,
    EmulatedModel,
    SimConfig,
    config_from_mapping,
    parse_size,
)
from herd_sim.names import model_key


def build_parser() -> argparse.ArgumentParser:
    """The ``herd-sim`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="herd-sim", description="A faithful Ollama emulator for tests, benchmarks and demos."
    )
    parser.add_argument("--port", type=int, help="listen port (default 11434; 0 = any free port)")
    parser.add_argument(
        "--host", help="listen address (default 127.0.0.1; anything else must be given here)"
    )
    parser.add_argument("--config", type=Path, help="YAML (or JSON) file with SimConfig fields")
    parser.add_argument(
        "--model",
        action="append",
        metavar="NAME:SIZE",
        help="a model on disk, e.g. llama3.2:3b:2.0GB (repeat; replaces the default models)",
    )
    parser.add_argument("--vram", type=float, metavar="GB", help="GPU memory in GiB")
    parser.add_argument("--num-parallel", type=int, help="concurrent requests per model")
    parser.add_argument("--max-queue", type=int, help="waiting requests before 503")
    parser.add_argument("--gen-tps", type=float, help="generation tokens/s (0 = unpaced)")
    parser.add_argument("--prompt-tps", type=float, help="prompt tokens/s (0 = instant)")
    parser.add_argument("--load-seconds-per-gb", type=float, help="model load delay")
    parser.add_argument("--reply-tokens", type=int, help="tokens in a natural reply")
    parser.add_argument("--keep-alive", help='default keep-alive, e.g. "5m" or "-1"')
    parser.add_argument("--seed", type=int, help="seed of the deterministic text")
    parser.add_argument("--name", help="a label shown in /_sim/stats")
    parser.add_argument(
        "--api",
        choices=("ollama", "openai"),
        help="the API to speak: ollama (default) or openai (an OpenAI-compatible text server)",
    )
    return parser


def model_from_spec(spec: str) -> EmulatedModel:
    """``NAME:SIZE`` -> a model; a known name keeps its metadata, others are guessed."""
    name, separator, size_text = spec.rpartition(":")
    if not separator or not name:
        raise ValueError(f"--model wants NAME:SIZE (e.g. llama3.2:3b:2.0GB), got {spec!r}")
    size = parse_size(size_text)
    for known in DEFAULT_MODELS:
        if model_key(known.name) == model_key(name):
            return msgspec.structs.replace(known, size=size)
    lowered = name.lower()
    if "embed" in lowered or "minilm" in lowered:
        return EmulatedModel(name=name, size=size, family="bert", capabilities=["embedding"])
    return EmulatedModel(name=name, size=size, capabilities=["completion", "tools"])


def config_from_args(args: argparse.Namespace) -> SimConfig:
    """Config file first, then the flags on top."""
    data: dict[str, object] = {}
    if args.config is not None:
        loaded = yaml.safe_load(args.config.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{args.config}: expected a mapping of SimConfig fields")
        data.update(loaded)
    flags = {
        "name": args.name,
        "port": args.port,
        "host": args.host,
        "num_parallel": args.num_parallel,
        "max_queue": args.max_queue,
        "gen_tps": args.gen_tps,
        "prompt_tps": args.prompt_tps,
        "load_seconds_per_gb": args.load_seconds_per_gb,
        "reply_tokens": args.reply_tokens,
        "keep_alive": args.keep_alive,
        "seed": args.seed,
        "api": args.api,
    }
    data.update({key: value for key, value in flags.items() if value is not None})
    if args.vram is not None:
        data["vram_bytes"] = int(args.vram * GIB)
    config = config_from_mapping(data)
    if args.model:
        config = msgspec.structs.replace(config, models=[model_from_spec(m) for m in args.model])
    if args.host is None and not is_loopback(config.host):
        raise ValueError(
            f"refusing to listen on {config.host!r} from a config file; pass --host to mean it"
        )
    return config


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    return is_loopback_host(host)


async def serve(config: SimConfig) -> None:
    """Serve until SIGINT/SIGTERM."""
    from herd_sim.app import start_sim_server
    from herd_sim.engine import SimEngine

    runner, port = await start_sim_server(SimEngine(config), config.host, config.port)
    host = f"[{config.host}]" if ":" in config.host else config.host
    models = ", ".join(model.name for model in config.models)
    print(f"herd-sim {config.name} listening on http://{host}:{port} ({models})", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # Windows
            loop.add_signal_handler(signal_number, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``herd-sim`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args)
    except (OSError, ValueError, yaml.YAMLError) as error:
        parser.error(str(error))
    raise_open_files_limit()  # (a benchmark may open a thousand streams at once)
    try:
        asyncio.run(serve(config))
    except OSError as error:
        print(f"herd-sim: cannot listen on {config.host}:{config.port}: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # pragma: no cover - signal handlers normally catch it
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
