"""The emulator's image generation: ``POST /v1/images/generations`` with real PNGs.

Ollama served this endpoint (experimentally, v0.14.3 to v0.32.5) for models with the
``image`` capability. The emulator does the same, and draws a deterministic picture from
the request: the same model, prompt, negative prompt, seed and size always give the same
bytes (see :func:`expected_image`), so a test can check what came back through the router.
Armed ``hang``/``fail`` injections apply; a client that goes away cancels the job.
"""

from __future__ import annotations

import base64
import hashlib
import re
import struct
import time
import zlib
from typing import Any

import msgspec
from aiohttp import web

from herd_sim.engine import SimEngine
from herd_sim.generation import inference_endpoint
from herd_sim.models import EmulatedModel
from herd_sim.names import ModelName
from herd_sim.scheduler import effective_num_ctx

__all__ = ["IMAGE_MODEL", "add_image_routes", "expected_image", "openai_error", "png"]

IMAGE_MODEL = EmulatedModel(
    name="x/z-image-turbo:latest",
    size=12_400_000_000,
    family="z-image",
    parameter_size="6B",
    quantization_level="FP8",
    capabilities=["image"],
)
"""An image model for emulated nodes (not among the default models)."""

DEFAULT_SIZE = 256
MAX_SIDE = 2048
GRID = 8
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_SIZE = re.compile(r"^(\d{1,5})[xX](\d{1,5})$")


class ImagesRequest(msgspec.Struct):
    """What the emulator reads of an images request (others are ignored, as Ollama does)."""

    prompt: str = ""
    model: str = ""
    n: int = 1
    size: str | None = None
    response_format: str | None = None
    negative_prompt: str | None = None
    seed: int | None = None
    steps: int | None = None


def png(width: int, height: int, rows: list[bytes]) -> bytes:
    """Encode RGB rows (``width * 3`` bytes each) as a PNG file."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(tag + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    raw = b"".join(b"\x00" + row for row in rows)
    return (
        PNG_SIGNATURE
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 6))
        + chunk(b"IEND", b"")
    )


def expected_image(
    model: str,
    prompt: str,
    width: int = DEFAULT_SIZE,
    height: int = DEFAULT_SIZE,
    seed: int | None = None,
    negative_prompt: str | None = None,
) -> bytes:
    """The PNG the emulator draws for this request: an 8x8 grid of prompt-derived colours.

    Example:
        >>> expected_image("x/z-image-turbo", "a red fox")[:8] == PNG_SIGNATURE
        True
    """
    key = ModelName.parse(model).key
    material = f"{key}\0{prompt}\0{negative_prompt or ''}\0{'' if seed is None else seed}"
    colours = b""
    block = hashlib.sha256(material.encode()).digest()
    while len(colours) < GRID * GRID * 3:
        colours += block
        block = hashlib.sha256(block).digest()
    edges_x = [width * i // GRID for i in range(GRID + 1)]
    edges_y = [height * i // GRID for i in range(GRID + 1)]
    rows: list[bytes] = []
    for cell_row in range(GRID):
        row = b"".join(
            colours[(cell_row * GRID + col) * 3 : (cell_row * GRID + col) * 3 + 3]
            * (edges_x[col + 1] - edges_x[col])
            for col in range(GRID)
        )
        rows.extend([row] * (edges_y[cell_row + 1] - edges_y[cell_row]))
    return png(width, height, rows)


def openai_error(status: int, message: str, param: str | None = None) -> web.Response:
    """An error as Ollama's ``/v1`` layer writes it (OpenAI's error object)."""
    kind = {400: "invalid_request_error", 404: "not_found_error"}.get(status, "api_error")
    body = {"error": {"message": message, "type": kind, "param": param, "code": None}}
    return web.Response(
        body=msgspec.json.encode(body), status=status, content_type="application/json"
    )


def _size(text: str | None) -> tuple[int, int] | None:
    if text is None or text in ("", "auto"):
        return DEFAULT_SIZE, DEFAULT_SIZE
    match = _SIZE.match(text.strip())
    if match is None:
        return None
    width, height = int(match.group(1)), int(match.group(2))
    if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE):
        return None
    return width, height


@inference_endpoint
async def images_generations(request: web.Request, engine: SimEngine) -> web.StreamResponse:
    """``POST /v1/images/generations``: ``b64_json`` PNGs for an ``image`` model."""
    try:
        body = msgspec.json.decode(await request.read(), type=ImagesRequest)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        return openai_error(400, str(exc))
    if not body.model:
        return openai_error(400, "model is required", "model")
    disk = engine.catalog.find(body.model)
    if disk is None:
        return openai_error(404, f'model "{body.model}" not found, try pulling it first', "model")
    if not disk.model.has("image"):
        return openai_error(400, f'"{body.model}" does not support image generation', "model")
    if not body.prompt:
        return openai_error(400, "prompt is required", "prompt")
    if body.response_format not in (None, "b64_json"):
        return openai_error(400, "only b64_json is supported", "response_format")
    size = _size(body.size)
    if size is None:
        return openai_error(400, f"invalid size {body.size!r} (WxH, at most 2048)", "size")
    if not 1 <= body.n <= 10:
        return openai_error(400, "n must be between 1 and 10", "n")
    num_ctx = effective_num_ctx(engine.config, disk.model, None)
    async with engine.scheduler.lease(disk, num_ctx, engine.default_keep_alive):
        data: list[dict[str, Any]] = []
        for index in range(body.n):
            seed = None if body.seed is None else body.seed + index
            if seed is None and body.n > 1:
                seed = index
            picture = expected_image(
                body.model, body.prompt, size[0], size[1], seed, body.negative_prompt
            )
            item: dict[str, Any] = {"b64_json": base64.b64encode(picture).decode()}
            if seed is not None:
                item["seed"] = seed
            data.append(item)
    engine.stats.completed += 1
    reply = {"created": int(time.time()), "data": data, "size": f"{size[0]}x{size[1]}"}
    return web.Response(
        body=msgspec.json.encode(reply), content_type="application/json", charset="utf-8"
    )


def add_image_routes(app: web.Application) -> None:
    """Register ``/v1/images/generations`` on the emulator's app."""
    app.router.add_post("/v1/images/generations", images_generations)
