"""The OpenAI-compatible backend: transcription, images and embeddings on a node's server.

It forwards to any server that speaks the OpenAI API for these workloads: ``herd-node-services``
(faster-whisper, sentence-transformers, diffusers), faster-whisper-server, LocalAI,
whisper.cpp's server, or Ollama's own ``/v1`` layer. Requests arrive in herd's canonical
form (Ollama-shaped for embeddings; see :mod:`herd.protocol.workloads` for the others) and
the replies go back in that form, so the routes never see which server answered.
For chat and completions on such a server, the node type is ``openai``
(:mod:`herd_plugins.backend_openai`, which builds on this backend).
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import msgspec
from herd import hookimpl
from herd.interfaces import (
    Backend,
    InferenceRequest,
    ModelEntry,
    NodeFailure,
    NodeReport,
    TypedReply,
    UpstreamReply,
    WholeReply,
)
from herd.names import normalize_model_name
from herd.net import describe_network_error
from herd.protocol.openai_upstream_embeddings import ollama_embed_from_openai
from herd.protocol.workloads import upstream_error_message

__all__ = ["OpenAICompatBackend"]

JSON = "application/json"
_decode = msgspec.json.decode
_encode = msgspec.json.encode


class OpenAICompatBackend(Backend):
    """A server on the node with OpenAI's ``/v1/audio/transcriptions``,
    ``/v1/images/generations`` and ``/v1/embeddings``."""

    name = "openai-compat"
    capabilities = frozenset({"embed", "image", "transcribe"})

    class Config(msgspec.Struct, forbid_unknown_fields=True):
        """Options under ``nodes[].services[].options``.

        Attributes:
            api_key: Sent as ``Authorization: Bearer ...`` when set.
            api_path: Where the OpenAI API lives on the server (``/v1``).
            transcription_format: The ``response_format`` asked of the server;
                ``verbose_json`` gives segments (for srt/vtt), ``json`` suits servers
                that only have that.
        """

        api_key: str = ""
        api_path: str = "/v1"
        transcription_format: str = "verbose_json"

    def __init__(self, node: Any, config: Any, context: Any) -> None:
        super().__init__(node, config, context)
        self._names: dict[str, str] = {}

    def _url(self, path: str) -> str:
        base = self.node.url.rstrip("/")
        prefix = "/" + self.config.api_path.strip("/") if self.config.api_path.strip("/") else ""
        if prefix and base.endswith(prefix):
            prefix = ""
        return f"{base}{prefix}{path}"

    def _headers(self, content_type: str | None = JSON) -> dict[str, str]:
        headers = {"Accept-Encoding": "identity"}
        if content_type:
            headers["Content-Type"] = content_type
        if self.config.api_key:
            headers["Authorization"] = f"Bearer {self.config.api_key}"
        return headers

    def _model_name(self, request: InferenceRequest) -> str:
        """The server's own name for the model (as its list spells it)."""
        named = request.node_body().get("model")
        return self._names.get(request.model_key) or str(named or request.model)

    async def poll(self) -> NodeReport:
        async with asyncio.timeout(self.context.poll_timeout):
            async with self.context.http.get(
                self._url("/models"), headers=self._headers(None), allow_redirects=False
            ) as r:
                if r.status in (404, 405, 501):
                    return NodeReport()  # no model list: the configured models stand
                if r.status != 200:
                    raise NodeFailure(f"/models answered {r.status}", status=r.status)
                data = _decode(await r.read())
        models = []
        items = data.get("data") if isinstance(data, dict) else None
        for item in items or []:
            name = str(item.get("id") or "")
            if not name:
                continue
            key = normalize_model_name(name)
            self._names[key] = name
            capabilities = [str(c) for c in item.get("capabilities") or []]
            models.append(ModelEntry(name=name, key=key, capabilities=capabilities, raw=item))
        return NodeReport(models=models)

    async def open(self, request: InferenceRequest) -> UpstreamReply:
        if request.endpoint in ("embed", "embeddings"):
            return await self._embed(request)
        if request.endpoint == "transcribe":
            return await self._post("/audio/transcriptions", self._transcription_form(request))
        if request.endpoint == "image":
            return await self._post("/images/generations", _encode(self._image_body(request)))
        raise NodeFailure(f"openai-compat cannot serve {request.endpoint!r}", retryable=False)

    def _transcription_form(self, request: InferenceRequest) -> aiohttp.FormData:
        body = request.body
        form = aiohttp.FormData()
        form.add_field(
            "file",
            body["audio"],
            filename=body.get("filename") or "audio",
            content_type=body.get("content_type") or "application/octet-stream",
        )
        form.add_field("model", self._model_name(request))
        form.add_field("response_format", self.config.transcription_format)
        for key in ("language", "prompt", "temperature"):
            value = body.get(key)
            if value not in (None, ""):
                form.add_field(key, str(value))
        for granularity in body.get("timestamp_granularities") or ():
            form.add_field("timestamp_granularities[]", granularity)
        return form

    def _image_body(self, request: InferenceRequest) -> dict[str, Any]:
        body = request.body
        out: dict[str, Any] = {
            "model": self._model_name(request),
            "prompt": body.get("prompt", ""),
            "n": body.get("n") or 1,
            "response_format": "b64_json",
        }
        if body.get("width") and body.get("height"):
            out["size"] = f"{body['width']}x{body['height']}"
        # herd's extensions; OpenAI-compatible servers ignore what they do not know
        for key in ("negative_prompt", "steps", "seed", "guidance"):
            if body.get(key) is not None:
                out[key] = body[key]
        return out

    async def _embed(self, request: InferenceRequest) -> UpstreamReply:
        body = request.node_body()
        legacy = request.endpoint == "embeddings"
        raw = body.get("prompt") if legacy else body.get("input")
        inputs = [raw] if isinstance(raw, str) else list(raw or [])
        inputs = [text for text in inputs if text != ""] if legacy else inputs
        if not inputs:
            empty = {"embedding": []} if legacy else {"model": request.model, "embeddings": []}
            return WholeReply(200, _encode(empty))
        payload: dict[str, Any] = {
            "model": self._model_name(request),
            "input": inputs,
            "encoding_format": "float",
        }
        if body.get("dimensions"):
            payload["dimensions"] = body["dimensions"]
        if body.get("truncate") is False:  # Ollama's option (herd-node-services takes it)
            payload["truncate"] = False
        reply = await self._post("/embeddings", _encode(payload))
        if reply.status >= 400:  # in Ollama's shape, as the embed endpoints answer
            message = upstream_error_message(reply.first, reply.status)
            return WholeReply(reply.status, _encode({"error": message}))
        try:  # decoded once, straight into the canonical answer's types
            answer = ollama_embed_from_openai(reply.first, request.model)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            # (status 502: the node answered, so this is no sign that it is unreachable)
            raise NodeFailure(_bad_embeddings(self.node.name, exc), status=502) from exc
        if len(answer.embeddings) != len(inputs):
            raise NodeFailure(
                f"node {self.node.name}: {len(answer.embeddings)} embeddings "
                f"for {len(inputs)} inputs",
                status=502,
            )
        if legacy:
            return WholeReply(200, _encode({"embedding": answer.embeddings[0]}))
        # kept as an object: an OpenAI client's route renders it without Ollama JSON between
        return TypedReply(answer)

    async def _post(self, path: str, data: bytes | aiohttp.FormData) -> UpstreamReply:
        content_type = JSON if isinstance(data, bytes) else None
        try:
            async with asyncio.timeout(self.context.first_byte_timeout):
                async with self.context.http.post(
                    self._url(path),
                    data=data,
                    headers=self._headers(content_type),
                    allow_redirects=False,  # never follow a node elsewhere
                    timeout=aiohttp.ClientTimeout(
                        total=None, sock_connect=self.context.connect_timeout
                    ),
                ) as response:
                    body = await response.read()
                    status = response.status
                    ctype = response.headers.get("Content-Type", JSON)
        except TimeoutError as exc:
            raise NodeFailure(f"node {self.node.name} timed out before answering") from exc
        except (aiohttp.ClientError, ConnectionError, OSError) as exc:
            # an unreachable service is not an unreachable node (its Ollama may be fine)
            raise NodeFailure(
                f"node {self.node.name}: {self.node.url} unreachable: "
                f"{describe_network_error(exc)}",
                status=502 if self.is_service else 0,
            ) from exc
        if status == 404:
            raise NodeFailure(upstream_error_message(body, status), status=404, not_found=True)
        if status >= 500 or status == 429:
            raise NodeFailure(
                f"node {self.node.name} answered {status}: {upstream_error_message(body, status)}",
                status=status,
            )
        return WholeReply(status, body, ctype)


def _bad_embeddings(node: str, exc: Exception) -> str:
    """Why a node's embeddings answer cannot be read, in words a user can act on."""
    if "got `array`" in str(exc) and ".embedding[0]" in str(exc):
        # llama-cpp-python with a model that has no pooling: a vector per token
        return (
            f"node {node} sent a vector per token, not one per input: its model has no "
            "pooling (serve an embedding model there)"
        )
    return f"node {node}: bad embeddings reply ({exc})"


@hookimpl
def herd_register_backends() -> list[type[Backend]]:
    return [OpenAICompatBackend]
