"""Configuration of the Ollama emulator: the models it holds and the machine it pretends to be."""

from __future__ import annotations

import hashlib
import re
from typing import Any

import msgspec

GIB = 1024**3
SIZE_UNITS = {
    "": 1,
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "k": 1000,
    "m": 1000**2,
    "g": 1000**3,
    "t": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}
_SIZE_PATTERN = re.compile(r"\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*([a-zA-Z]*)\s*")


class EmulatedModel(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One model as the emulator reports and serves it.

    Args:
        name: Model name, e.g. ``"llama3.2:3b"``; ``:latest`` is implied when there is no tag.
        size: Bytes on disk (``/api/tags`` ``size``); also the weight part of the loaded size.
        family: Architecture family, e.g. ``"llama"``; the ``model_info`` key prefix.
        parameter_size: Human parameter count, e.g. ``"3.2B"``.
        quantization_level: E.g. ``"Q4_K_M"``.
        context_length: The model's maximum (trained) context; ``num_ctx`` is clamped to it.
        capabilities: Ollama capability names: ``completion``, ``tools``, ``vision``,
            ``thinking``, ``insert``, ``embedding``.
        embedding_length: Vector length for ``/api/embed`` (and ``model_info``).
        digest: Hex sha256 without the ``sha256:`` prefix; derived from the name when empty.
        format: ``"gguf"`` or ``"safetensors"``.

    Example:
        >>> EmulatedModel(name="tiny:1b", size=700_000_000, parameter_size="1B").capabilities
        ['completion']
    """

    name: str
    size: int
    family: str = "llama"
    parameter_size: str = ""
    quantization_level: str = "Q4_K_M"
    context_length: int = 8192
    capabilities: list[str] = msgspec.field(default_factory=lambda: ["completion"])
    embedding_length: int = 384
    digest: str = ""
    format: str = "gguf"

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise ValueError("an emulated model needs a name")
        if self.size <= 0:
            raise ValueError(f"model {self.name!r}: size must be positive")
        if self.context_length <= 0:
            raise ValueError(f"model {self.name!r}: context_length must be positive")
        if not self.digest:
            self.digest = hashlib.sha256(f"herd-sim/{self.name}".encode()).hexdigest()

    def has(self, capability: str) -> bool:
        """Whether the model advertises ``capability``."""
        return capability in self.capabilities


DEFAULT_MODELS: tuple[EmulatedModel, ...] = (
    EmulatedModel(
        name="llama3.2:3b",
        size=2_019_393_189,
        family="llama",
        parameter_size="3.2B",
        context_length=131_072,
        capabilities=["completion", "tools"],
        embedding_length=3072,
    ),
    EmulatedModel(
        name="qwen2.5:7b",
        size=4_683_087_332,
        family="qwen2",
        parameter_size="7.6B",
        context_length=32_768,
        capabilities=["completion", "tools", "insert"],
        embedding_length=3584,
    ),
    EmulatedModel(
        name="qwen3:4b",
        size=2_497_293_931,
        family="qwen3",
        parameter_size="4.0B",
        context_length=40_960,
        capabilities=["completion", "tools", "thinking"],
        embedding_length=2560,
    ),
    EmulatedModel(
        name="llava:7b",
        size=4_733_363_377,
        family="llama",
        parameter_size="7B",
        quantization_level="Q4_0",
        context_length=32_768,
        capabilities=["completion", "vision"],
        embedding_length=4096,
    ),
    EmulatedModel(
        name="nomic-embed-text:latest",
        size=274_302_450,
        family="nomic-bert",
        parameter_size="137M",
        quantization_level="F16",
        context_length=2048,
        capabilities=["embedding"],
        embedding_length=768,
    ),
    EmulatedModel(
        name="all-minilm:latest",
        size=45_960_996,
        family="bert",
        parameter_size="23M",
        quantization_level="F16",
        context_length=512,
        capabilities=["embedding"],
        embedding_length=384,
    ),
)
"""A small realistic fleet member: two tool models, a thinking, a vision and two embedders."""


def _default_models() -> list[EmulatedModel]:
    return list(DEFAULT_MODELS)


class SimConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Everything that shapes one emulated Ollama server.

    Pacing defaults are zero so tests run as fast as the machine allows; set ``gen_tps``,
    ``prompt_tps`` and ``load_seconds_per_gb`` for realistic timing.

    Args:
        name: A label for logs and ``/_sim/stats``.
        models: Models on disk at start.
        registry: Models that ``/api/pull`` can fetch (not on disk until pulled).
        vram_bytes: GPU memory shared by loaded models.
        num_parallel: Concurrent generations per loaded model (``OLLAMA_NUM_PARALLEL``).
        max_queue: Requests allowed to wait for a runner (``OLLAMA_MAX_QUEUE``); more get 503.
        load_seconds_per_gb: Load delay per GB (1e9 bytes) of model size.
        prompt_tps: Prompt-evaluation speed in tokens/s (0 = instant).
        gen_tps: Generation speed in tokens/s per request (0 = as fast as possible).
        pull_seconds_per_gb: Download time per GB for ``/api/pull`` (0 = instant).
        reply_tokens: Length of a natural (not ``num_predict``-capped) reply.
        thinking_tokens: Thinking tokens a thinking model emits before its reply.
        default_num_ctx: Context loaded when a request sets no ``options.num_ctx``.
        keep_alive: Default keep-alive: seconds, or a Go duration such as ``"5m"``.
        seed: Seed of the deterministic text and vector generators.
        version: Reported by ``/api/version``.
        api: ``ollama`` (the Ollama API) or ``openai``: an OpenAI-compatible text server
            (``/v1/models``, ``/v1/chat/completions``, ``/v1/completions``) like llama.cpp's
            server or vLLM, for node ``type: openai``.
        host: Listen address for ``herd-sim`` (``SimNode`` always uses loopback).
        port: Listen port for ``herd-sim``.
    """

    name: str = "herd-sim"
    models: list[EmulatedModel] = msgspec.field(default_factory=_default_models)
    registry: list[EmulatedModel] = msgspec.field(default_factory=list)
    vram_bytes: int = 16 * GIB
    num_parallel: int = 4
    max_queue: int = 512
    load_seconds_per_gb: float = 0.0
    prompt_tps: float = 0.0
    gen_tps: float = 0.0
    pull_seconds_per_gb: float = 0.0
    reply_tokens: int = 24
    thinking_tokens: int = 8
    default_num_ctx: int = 4096
    keep_alive: float | str = "5m"
    seed: int = 0
    version: str = "0.12.6"
    api: str = "ollama"
    host: str = "127.0.0.1"
    port: int = 11434

    def __post_init__(self) -> None:
        if self.api not in ("ollama", "openai"):
            raise ValueError(f"api must be 'ollama' or 'openai', not {self.api!r}")
        positive = {"num_parallel": self.num_parallel, "default_num_ctx": self.default_num_ctx}
        for field_name, value in positive.items():
            if value < 1:
                raise ValueError(f"{field_name} must be at least 1")
        not_negative = {
            "vram_bytes": self.vram_bytes,
            "max_queue": self.max_queue,
            "load_seconds_per_gb": self.load_seconds_per_gb,
            "prompt_tps": self.prompt_tps,
            "gen_tps": self.gen_tps,
            "pull_seconds_per_gb": self.pull_seconds_per_gb,
            "reply_tokens": self.reply_tokens,
            "thinking_tokens": self.thinking_tokens,
        }
        for field_name, value in not_negative.items():
            if value < 0:
                raise ValueError(f"{field_name} must not be negative")


def parse_size(value: int | float | str) -> int:
    """Turn ``2019393189``, ``"2.0GB"``, ``"4.7G"`` or ``"512MiB"`` into bytes.

    Decimal units (``KB``, ``MB``, ``GB``) are powers of 1000 as Ollama prints them; ``KiB``,
    ``MiB`` and ``GiB`` are powers of 1024.
    """
    if isinstance(value, bool):
        raise ValueError(f"invalid size: {value!r}")
    if isinstance(value, int | float):
        return int(value)
    match = _SIZE_PATTERN.fullmatch(value)
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in SIZE_UNITS:
        raise ValueError(f"invalid size: {value!r} (try 2019393189, '2.0GB' or '512MiB')")
    return int(float(match.group(1)) * SIZE_UNITS[unit])


def kv_cache_bytes(model: EmulatedModel, num_ctx: int) -> int:
    """Bytes the KV cache adds to a loaded model: linear in ``num_ctx``, scaled by model size."""
    bytes_per_token = max(256, model.size // 65_536)
    return bytes_per_token * num_ctx


def loaded_size_bytes(model: EmulatedModel, num_ctx: int) -> int:
    """What ``/api/ps`` reports as ``size`` for ``model`` loaded with ``num_ctx``."""
    return model.size + kv_cache_bytes(model, num_ctx)


def config_from_mapping(data: dict[str, Any]) -> SimConfig:
    """Build a :class:`SimConfig` from parsed YAML/JSON; sizes may be strings like ``"2GB"``.

    Raises:
        ValueError: unknown keys, wrong types or bad values, with the offending path.
    """
    data = dict(data)
    if "vram_bytes" in data:
        data["vram_bytes"] = parse_size(data["vram_bytes"])
    if "vram_gb" in data:
        data["vram_bytes"] = int(float(data.pop("vram_gb")) * GIB)
    for list_key in ("models", "registry"):
        if list_key in data:
            data[list_key] = [_model_mapping(entry) for entry in data[list_key] or []]
    try:
        return msgspec.convert(data, SimConfig)
    except msgspec.ValidationError as error:
        raise ValueError(f"invalid sim config: {error}") from error


def _model_mapping(entry: Any) -> Any:
    if isinstance(entry, dict) and "size" in entry:
        entry = dict(entry)
        entry["size"] = parse_size(entry["size"])
    return entry
