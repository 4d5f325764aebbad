"""The ``herd-node-services`` aiohttp app: OpenAI-compatible endpoints over local models.

=================================  ===========================================================
``GET /v1/models``                 every model, with herd's ``capabilities`` extension
``POST /v1/audio/transcriptions``  multipart ``file``, ``model``, ``response_format``, ...
``POST /v1/embeddings``            ``model``, ``input`` (str or list), ``encoding_format``
``POST /v1/images/generations``    ``model``, ``prompt``, ``size``, ``n`` (+ ``seed``, ``steps``,
                                   ``negative_prompt``, ``guidance``); ``b64_json`` PNGs
``GET /stats``                     jobs completed, failed, cancelled and active, per model
=================================  ===========================================================

The router reaches it with the ``openai-compat`` backend (``nodes[].services``). A client
that disconnects cancels its job: aiohttp cancels the handler and the engine stops.
"""

from __future__ import annotations

import base64
import functools
import hmac
import inspect
import re
import struct
import time
from collections.abc import Sequence
from typing import Any

import msgspec
from aiohttp import web
from herd.protocol.workloads import TRANSCRIPT_FORMATS, render_transcript

from herd_services.jobs import BadInput, Engine, JobCancelled

__all__ = ["ENGINES", "create_services_app"]

ENGINES = web.AppKey("herd_node_engines", dict)
MAX_AUDIO = web.AppKey("herd_node_max_audio", int)
API_KEY = web.AppKey("herd_node_api_key", str)
_SIZE = re.compile(r"^(\d{1,5})[xX](\d{1,5})$")


class EmbeddingsRequest(msgspec.Struct):
    model: str = ""
    input: str | list[str] = ""
    encoding_format: str = "float"
    dimensions: int | None = None
    truncate: bool = True  # (Ollama's: false makes an input past the context an error)


class ImagesRequest(msgspec.Struct):
    prompt: str = ""
    model: str = ""
    n: int = 1
    size: str | None = None
    response_format: str | None = None
    negative_prompt: str | None = None
    steps: int | None = None
    seed: int | None = None
    guidance: float | None = None


class ApiError(Exception):
    """An error answered in OpenAI's shape."""

    def __init__(self, status: int, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param = status, message, param


def _error(status: int, message: str, param: str | None = None) -> web.Response:
    kind = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error"}
    error = {
        "message": message,
        "type": kind.get(status, "invalid_request_error" if status < 500 else "server_error"),
        "param": param,
        "code": None,
    }
    return web.json_response({"error": error}, status=status)


@web.middleware
async def openai_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """Check the key, and answer every error in OpenAI's shape."""
    key = request.app[API_KEY]
    if key and request.path != "/":
        sent = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(sent.encode(), key.encode()):
            return _error(401, "missing or wrong API key")
    try:
        return await handler(request)
    except ApiError as exc:
        return _error(exc.status, exc.message, exc.param)
    except BadInput as exc:
        return _error(400, str(exc))
    except JobCancelled:
        return _error(499, "cancelled")
    except web.HTTPRequestEntityTooLarge:
        return _error(413, f"the request is larger than {request.app[MAX_AUDIO]} bytes", "file")
    except web.HTTPException:
        raise
    except Exception as exc:  # a model failure: the router may try another node
        return _error(500, f"{type(exc).__name__}: {exc}")


def _engine(request: web.Request, capability: str, model: str) -> Any:
    engines: dict[str, Engine] = request.app[ENGINES]
    offered = [e for e in engines.values() if e.capability == capability]
    if not offered:
        raise ApiError(404, f"this node serves no {capability} model", "model")
    if not model and len(offered) == 1:
        return offered[0]
    engine = engines.get(model)
    if engine is None or engine.capability != capability:
        names = ", ".join(e.name for e in offered)
        raise ApiError(404, f"model {model!r} not found (here: {names})", "model")
    return engine


async def root(request: web.Request) -> web.Response:
    return web.Response(text="herd node services are running")


async def models(request: web.Request) -> web.Response:
    data = [
        {
            "id": engine.name,
            "object": "model",
            "created": 0,
            "owned_by": "herd-node",
            "capabilities": [engine.capability],
        }
        for engine in request.app[ENGINES].values()
    ]
    return web.json_response({"object": "list", "data": data})


async def stats(request: web.Request) -> web.Response:
    engines: dict[str, Engine] = request.app[ENGINES]
    return web.json_response({name: e.stats.as_dict() for name, e in engines.items()})


async def transcriptions(request: web.Request) -> web.Response:
    limit = request.app[MAX_AUDIO]
    if request.content_length is not None and request.content_length > limit + 1024 * 1024:
        raise ApiError(413, f"the audio file is larger than {limit} bytes", "file")
    try:
        form = await request.post()
    except ValueError as exc:
        raise ApiError(400, f"the multipart body could not be read: {exc}") from None
    upload = form.get("file")
    if not isinstance(upload, web.FileField):
        raise ApiError(400, "send the audio as a file part named `file`", "file")
    audio = upload.file.read(limit + 1)
    if not audio:
        raise ApiError(400, "the audio file is empty", "file")
    if len(audio) > limit:
        raise ApiError(413, f"the audio file is larger than {limit} bytes", "file")
    response_format = str(form.get("response_format") or "json")
    if response_format not in TRANSCRIPT_FORMATS:
        raise ApiError(400, f"unsupported response_format {response_format!r}", "response_format")
    engine = _engine(request, "transcribe", str(form.get("model") or ""))
    temperature = form.get("temperature")
    try:
        heat = float(str(temperature)) if temperature not in (None, "") else None
    except ValueError:
        raise ApiError(400, "temperature must be a number", "temperature") from None
    granularities = form.getall("timestamp_granularities[]", [])
    job = engine.transcribe
    if "word" in granularities and "words" in inspect.signature(job).parameters:
        job = functools.partial(job, words=True)  # (an engine without word times: none)
    result = await engine.run(
        job,
        audio,
        str(form.get("language") or "") or None,
        str(form.get("prompt") or "") or None,
        heat,
    )
    body, media = render_transcript(result, response_format)
    return web.Response(body=body, headers={"Content-Type": media})


def _decode(body: bytes, struct_type: type[Any]) -> Any:
    try:
        return msgspec.json.decode(body, type=struct_type)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ApiError(400, str(exc)) from None


async def embeddings(request: web.Request) -> web.Response:
    wire = _decode(await request.read(), EmbeddingsRequest)
    texts = [wire.input] if isinstance(wire.input, str) else list(wire.input)
    if not texts or any(not t for t in texts):
        raise ApiError(
            400, "input must be a non-empty string or list of non-empty strings", "input"
        )
    if wire.encoding_format not in ("float", "base64"):
        raise ApiError(400, "encoding_format must be float or base64", "encoding_format")
    engine = _engine(request, "embed", wire.model)
    job = engine.embed
    if not wire.truncate and "truncate" in inspect.signature(job).parameters:
        job = functools.partial(job, truncate=False)
    vectors, tokens = await engine.run(job, texts, wire.dimensions)
    data = [
        {"object": "embedding", "index": i, "embedding": _encoded(v, wire.encoding_format)}
        for i, v in enumerate(vectors)
    ]
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    return web.json_response({"object": "list", "data": data, "model": engine.name, "usage": usage})


def _encoded(vector: list[float], encoding: str) -> Any:
    if encoding == "float":
        return vector
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


async def images(request: web.Request) -> web.Response:
    wire = _decode(await request.read(), ImagesRequest)
    if not wire.prompt.strip():
        raise ApiError(400, "prompt is required", "prompt")
    if wire.response_format not in (None, "b64_json"):
        raise ApiError(400, "only b64_json is supported", "response_format")
    if not 1 <= wire.n <= 10:
        raise ApiError(400, "n must be between 1 and 10", "n")
    width = height = None
    if wire.size and wire.size != "auto":
        match = _SIZE.match(wire.size)
        if match is None:
            raise ApiError(400, f"size must look like 512x512, not {wire.size!r}", "size")
        width, height = int(match.group(1)), int(match.group(2))
    engine = _engine(request, "image", wire.model)
    job = {
        "prompt": wire.prompt,
        "negative_prompt": wire.negative_prompt,
        "width": width,
        "height": height,
        "steps": wire.steps,
        "seed": wire.seed,
        "guidance": wire.guidance,
        "n": wire.n,
    }
    pictures = await engine.run(engine.generate, job)
    data = [{"b64_json": base64.b64encode(png).decode(), "seed": seed} for png, seed in pictures]
    return web.json_response({"created": int(time.time()), "data": data})


def create_services_app(
    engines: Sequence[Engine], *, max_audio_bytes: int = 25 * 1024 * 1024, api_key: str = ""
) -> web.Application:
    """The app serving ``engines`` (each model name once).

    Raises:
        ValueError: two engines share a name.
    """
    by_name: dict[str, Engine] = {}
    for engine in engines:
        if engine.name in by_name:
            raise ValueError(f"two models are named {engine.name!r}")
        by_name[engine.name] = engine
    app = web.Application(
        middlewares=[openai_errors], client_max_size=max_audio_bytes + 1024 * 1024
    )
    app[ENGINES] = by_name
    app[MAX_AUDIO] = max_audio_bytes
    app[API_KEY] = api_key
    app.router.add_get("/", root)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/stats", stats)
    app.router.add_post("/v1/audio/transcriptions", transcriptions)
    app.router.add_post("/v1/embeddings", embeddings)
    app.router.add_post("/v1/images/generations", images)
    return app
