"""Image generation: ``POST /api/generate-image`` (a PNG) and ``POST /v1/images/generations``.

Both go to a node whose services offer the model for ``image``; the node answers in
OpenAI's shape (``b64_json``), which ``/api/generate-image`` turns into ``image/png``.
"""

from __future__ import annotations

import base64
import binascii
import time
from typing import Any

import msgspec
from litestar import Request, Response, post

from herd._engine.exchange import Exchange
from herd._engine.routes.common import JSON, gateway_of, read_body
from herd._engine.routes.workload_common import (
    WorkloadOff,
    check_enabled,
    default_model,
    open_job,
    start_job,
    take_job,
    unreadable,
    workload_off_handler,
)
from herd.errors import HerdError
from herd.protocol.openai import OpenAIRequestError, decode_openai
from herd.protocol.workloads import ImageRequest, OpenAIImageRequest, parse_size

__all__ = ["ROUTES"]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_IMAGE_FIELDS = ("negative_prompt", "width", "height", "steps", "seed", "guidance", "n")


def _decode(body: bytes, struct: type[Any]) -> Any:
    try:
        return decode_openai(body, struct)  # the same checks, and the field at fault as param
    except OpenAIRequestError as exc:
        raise HerdError(400, exc.message, param=exc.param) from None


async def _generate(
    request: Request[Any, Any, Any], api: str, image: ImageRequest
) -> tuple[Exchange, list[dict[str, Any]]]:
    exchange = start_job(request, api=api, endpoint="image", kind="image", capability="image")
    gateway = exchange.gateway
    model = image.model or default_model(gateway, "image")
    take_job(exchange, model, {key: getattr(image, key) for key in ("prompt", *_IMAGE_FIELDS)})
    await open_job(exchange, gateway.settings.workloads.image_timeout)
    try:
        items = _images(exchange.attempt.reply.first)
    except ValueError as exc:
        raise unreadable(exchange, exc) from None
    exchange.done()
    return exchange, items


def _images(body: bytes) -> list[dict[str, Any]]:
    try:
        data = msgspec.json.decode(body)
    except msgspec.DecodeError:
        raise ValueError("the image reply is not JSON") from None
    items = data.get("data") if isinstance(data, dict) else None
    if not items or not all(isinstance(i, dict) and i.get("b64_json") for i in items):
        raise ValueError("the image reply has no b64_json images")
    for item in items:
        try:
            head = base64.b64decode(item["b64_json"][:24], validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("the image reply holds invalid base64") from None
        if not head.startswith(PNG_SIGNATURE):
            raise ValueError("the image reply is not a PNG")
    return items


@post(
    "/api/generate-image", status_code=200, exception_handlers={WorkloadOff: workload_off_handler}
)
async def generate_image(request: Request[Any, Any, Any]) -> Response[bytes]:
    """One PNG from a prompt; JSON in, ``image/png`` out, with the ``X-Herd-*`` headers."""
    gateway = gateway_of(request)
    check_enabled(gateway, "image_generation")
    image = _decode(await read_body(request), ImageRequest)
    image = msgspec.structs.replace(image, n=1)
    exchange, items = await _generate(request, "ollama", image)
    png = base64.b64decode(items[0]["b64_json"])
    headers = exchange.headers()
    if items[0].get("seed") is not None:
        headers["X-Herd-Seed"] = str(items[0]["seed"])
    return Response(png, media_type="image/png", headers=headers)


@post(
    "/v1/images/generations",
    status_code=200,
    exception_handlers={WorkloadOff: workload_off_handler},
)
async def images_generations(request: Request[Any, Any, Any]) -> Response[bytes]:
    """OpenAI's image endpoint; images come back as ``b64_json`` (``url`` is refused)."""
    gateway = gateway_of(request)
    check_enabled(gateway, "image_generation")
    wire = _decode(await read_body(request), OpenAIImageRequest)
    if wire.response_format not in (None, "b64_json"):
        raise HerdError(
            400,
            "herd returns images as b64_json only; leave response_format out or set it to b64_json",
            param="response_format",
        )
    try:
        size = parse_size(wire.size)
    except ValueError as exc:
        raise HerdError(400, str(exc), param="size") from None
    try:
        image = ImageRequest(
            prompt=wire.prompt,
            model=wire.model,
            width=size[0] if size else None,
            height=size[1] if size else None,
            negative_prompt=wire.negative_prompt,
            steps=wire.steps,
            seed=wire.seed,
            guidance=wire.guidance,
            n=wire.n,
        )
    except ValueError as exc:
        raise HerdError(400, str(exc)) from None
    exchange, items = await _generate(request, "openai", image)
    data = [
        {key: item[key] for key in ("b64_json", "revised_prompt") if item.get(key) is not None}
        for item in items
    ]
    body: dict[str, Any] = {"created": int(time.time()), "data": data, "output_format": "png"}
    if size:
        body["size"] = f"{size[0]}x{size[1]}"
    return Response(msgspec.json.encode(body), media_type=JSON, headers=exchange.headers())


ROUTES = [generate_image, images_generations]
