"""Node ``type: openai``: a text server that speaks OpenAI's API instead of Ollama's.

For llama.cpp's ``llama-server``, llama-cpp-python, vLLM, SGLang, LM Studio, LocalAI and
TGI's OpenAI layer. The router's canonical (Ollama-shaped) request is translated once into
``/v1/chat/completions`` or ``/v1/completions`` (embeddings go to ``/v1/embeddings`` as the
``openai-compat`` backend sends them) and the server's SSE stream back into Ollama NDJSON
lines, so every front API (Ollama, OpenAI, Anthropic, Responses) reaches these nodes.

Inventory comes from ``/v1/models``. Such servers have no "loaded" state: every model they
list counts as loaded (hot). The context length is the option ``context_length`` when set,
else what the server says: vLLM's ``max_model_len`` in the model list, or llama.cpp's
``/props`` (``default_generation_settings.n_ctx``). Queue depth comes from herd's own
in-flight counts, as for any node.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import msgspec
from herd import hookimpl
from herd.interfaces import (
    Backend,
    InferenceRequest,
    LoadedModel,
    ModelEntry,
    NodeFailure,
    NodeReport,
    StreamBroken,
    TypedReply,
    UpstreamReply,
    WholeReply,
)
from herd.names import normalize_model_name
from herd.net import describe_network_error
from herd.protocol.ollama import is_zero_keep_alive
from herd.protocol.openai_upstream import (
    CUT_SHORT,
    NdjsonFromSse,
    chat_request_from_ollama,
    ollama_chat_from_completion,
)
from herd.protocol.openai_upstream_completions import (
    GenerateNdjsonFromSse,
    completion_request_from_ollama,
    ollama_generate_from_completion,
)
from herd.protocol.workloads import upstream_error_message

from herd_plugins.backend_openai_compat import OpenAICompatBackend

__all__ = ["OpenAIBackend"]

_encode = msgspec.json.encode
_decode = msgspec.json.decode
_NEVER = "2318-01-01T00:00:00Z"  # an OpenAI server keeps its models loaded: no expiry
_OLLAMA_ONLY = ("options", "keep_alive", "num_ctx", "repeat_penalty")


class OpenAIStreamReply(UpstreamReply):
    """An open SSE reply, read as Ollama NDJSON lines through a translator."""

    def __init__(
        self,
        response: aiohttp.ClientResponse,
        translator: NdjsonFromSse,
        lines: list[bytes],
        read_timeout: float,
        on_close: Any = None,
    ) -> None:
        self.status = 200
        self._on_close = on_close
        self.content_type = "application/x-ndjson"
        self.first = lines[0]
        self.streaming = True
        self._pending = lines[1:]
        self._response = response
        self._translator = translator
        self._read_timeout = read_timeout

    async def rest(self) -> AsyncIterator[bytes]:
        for line in self._pending:
            yield line
        self._pending = []
        content = self._response.content
        try:
            while not self._translator.finished:
                async with asyncio.timeout(self._read_timeout):
                    chunk = await content.readany()
                out = self._translator.feed(chunk) if chunk else self._translator.close()
                for line in _lines(out):
                    yield line
        except (aiohttp.ClientError, TimeoutError, ConnectionError) as exc:
            raise StreamBroken(describe_network_error(exc)) from exc
        finally:
            self._response.release()

    async def aclose(self) -> None:
        self._response.close()
        if self._on_close is not None:
            self._on_close, on_close = None, self._on_close
            on_close()


def _tags_entry(
    name: str, item: dict[str, Any], details: dict[str, Any], first_seen: float
) -> dict[str, Any]:
    """The model as Ollama's ``/api/tags`` lists it (what herd's own listing passes on).

    ``modified_at`` is the server's ``created`` when it gives one (llama.cpp's servers do
    not), else ``first_seen``, when herd first saw the model there: Ollama's clients parse
    it as a timestamp and refuse the whole listing over an empty one."""
    created = item.get("created")
    when = created if isinstance(created, int | float) and created > 0 else first_seen
    modified = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))
    return {
        "name": name,
        "model": name,
        "modified_at": modified,
        "size": 0,
        "digest": "",
        "details": details,
    }


def _load_answer(endpoint: str, model: str, keep_alive: Any) -> UpstreamReply:
    """Ollama's answer to a load or unload request (no messages, no prompt). An OpenAI
    server keeps its models loaded and has neither, so it is not asked: the model is
    ready, and stays (an unload cannot reach it)."""
    answer: dict[str, Any] = {
        "model": model,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "done": True,
        "done_reason": "unload" if is_zero_keep_alive(keep_alive) else "load",
    }
    if endpoint == "chat":
        answer["message"] = {"role": "assistant", "content": ""}
    else:
        answer["response"] = ""
    return WholeReply(200, _encode(answer))


def _lines(block: bytes) -> list[bytes]:
    return [line + b"\n" for line in block.split(b"\n") if line]


class OpenAIBackend(OpenAICompatBackend):
    """A node whose server speaks OpenAI's text API (chat, completions, embeddings)."""

    name = "openai"
    capabilities = frozenset({"text", "embed"})

    class Config(msgspec.Struct, forbid_unknown_fields=True):
        """Options under ``nodes[].options``.

        Attributes:
            api_key: Sent as ``Authorization: Bearer ...`` when set.
            api_path: Where the OpenAI API lives on the server (``/v1``).
            context_length: The context each model is served with, when the server does
                not say (0: ask the server; unknown when it does not tell).
        """

        api_key: str = ""
        api_path: str = "/v1"
        context_length: int = 0

    def __init__(self, node: Any, config: Any, context: Any) -> None:
        super().__init__(node, config, context)
        self._props = True  # llama.cpp's /props, until the server says it has none
        self._busy = 0  # requests this backend has open on the server
        self._last: NodeReport | None = None
        self._first_seen: dict[str, float] = {}  # model -> when a poll first listed it

    async def poll(self) -> NodeReport:
        """The server's models; a busy server keeps its last report.

        While herd has a request open there, the server is not asked: its answer flowing
        is proof of life, and single-slot servers take a poll for a request. llama-cpp-python
        holds ``/v1/models`` until the running generation ends, and by default ends that
        generation at once for it (checked against 0.3: a stream cut mid-answer at every
        poll). A poll that times out while a request of herd's is open (one sent meanwhile)
        is a busy node, not a dead one.
        """
        if self._busy and self._last is not None:
            return self._last
        try:
            report = await self._poll()
        except TimeoutError:
            if self._busy and self._last is not None:
                return self._last
            raise
        self._last = report
        return report

    def _done(self) -> None:
        self._busy -= 1

    async def _poll(self) -> NodeReport:
        async with asyncio.timeout(self.context.poll_timeout):
            data = await self._get(self._url("/models"))
            if data is None:
                raise NodeFailure("/models is missing: is this an OpenAI-compatible server?")
            n_ctx = self.config.context_length or await self._server_context()
        models, loaded = [], []
        for item in data.get("data") or [] if isinstance(data, dict) else []:
            name = str(item.get("id") or "") if isinstance(item, dict) else ""
            if not name:
                continue
            key = normalize_model_name(name)
            self._names[key] = name
            context = n_ctx or int(item.get("max_model_len") or 0)
            details = {"format": "openai", "family": str(item.get("owned_by") or "")}
            first_seen = self._first_seen.setdefault(name, time.time())
            tags = _tags_entry(name, item, details, first_seen)
            models.append(
                ModelEntry(
                    name=name, key=key, details=details, capabilities=["completion"], raw=tags
                )
            )
            ps = {**tags, "expires_at": _NEVER, "size_vram": 0, "context_length": context}
            loaded.append(
                LoadedModel(name=name, key=key, context_length=context, expires_at=_NEVER, raw=ps)
            )
        return NodeReport(version="openai", models=models, loaded=loaded)

    async def _get(self, url: str) -> Any:
        async with self.context.http.get(
            url, headers=self._headers(None), allow_redirects=False
        ) as response:
            if response.status in (404, 405, 501):
                return None
            if response.status != 200:
                raise NodeFailure(f"{url} answered {response.status}", status=response.status)
            return _decode(await response.read())

    async def _server_context(self) -> int:
        """llama.cpp's ``/props`` context (at the server's root, not under ``/v1``)."""
        if not self._props:
            return 0
        root = self._url("").removesuffix("/" + self.config.api_path.strip("/"))
        try:
            props = await self._get(root + "/props")
        except (NodeFailure, aiohttp.ClientError, msgspec.DecodeError):
            props = None
        if not isinstance(props, dict):
            self._props = False
            return 0
        settings = props.get("default_generation_settings") or {}
        return int(settings.get("n_ctx") or props.get("n_ctx") or 0)

    async def open(self, request: InferenceRequest) -> UpstreamReply:
        if request.endpoint in ("embed", "embeddings"):
            return await self._embed(request)
        # As shaped for this node (a substitute's name): translated once, from the dict
        body = request.node_body()
        model = str(body.get("model") or request.model_key)
        empty = not body.get("messages" if request.endpoint == "chat" else "prompt")
        if empty and request.endpoint in ("chat", "generate"):
            return _load_answer(request.endpoint, model, body.get("keep_alive"))
        if request.endpoint == "chat":
            outgoing: Any = chat_request_from_ollama(body)
            path = "/chat/completions"
        elif request.endpoint == "generate":
            if body.get("images"):  # a completion has no images: say so rather than drop them
                message = "images need /api/chat on this node (an OpenAI-compatible server)"
                return WholeReply(400, _encode({"error": message}))
            outgoing = completion_request_from_ollama(body)
            path = "/completions"
        else:
            raise NodeFailure(f"openai backend cannot serve {request.endpoint!r}", retryable=False)
        outgoing.model = self._names.get(normalize_model_name(model), model)
        for name in _OLLAMA_ONLY:  # Ollama's knobs: an OpenAI server would reject or ignore
            setattr(outgoing, name, None)
        payload = _encode(outgoing)
        self._busy += 1
        if not outgoing.stream:
            try:
                reply = await self._post(path, payload)
            finally:
                self._done()
            return self._whole(reply, request.endpoint, model)
        if request.endpoint == "chat":
            translator: NdjsonFromSse = NdjsonFromSse(model, request.prompt_tokens)
        else:
            translator = GenerateNdjsonFromSse(model, request.prompt_tokens)
        try:
            opened = await self._stream(path, payload, translator, request.endpoint)
        except BaseException:
            self._done()
            raise
        if not isinstance(opened, OpenAIStreamReply):
            self._done()
        return opened

    def _whole(self, reply: UpstreamReply, endpoint: str, model: str) -> UpstreamReply:
        if reply.status >= 400:  # in Ollama's shape, as the front routes expect
            message = upstream_error_message(reply.first, reply.status)
            return WholeReply(reply.status, _encode({"error": message}))
        try:
            if endpoint == "chat":
                out = ollama_chat_from_completion(reply.first, model)
            else:
                out = ollama_generate_from_completion(reply.first, model)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise NodeFailure(
                f"node {self.node.name}: unreadable reply ({exc})", status=502
            ) from exc
        return TypedReply(out)  # an OpenAI client's route renders it with no JSON between

    async def _stream(
        self, path: str, payload: bytes, translator: NdjsonFromSse, endpoint: str
    ) -> UpstreamReply:
        response: aiohttp.ClientResponse | None = None
        try:
            async with asyncio.timeout(self.context.first_byte_timeout):
                response = await self.context.http.post(
                    self._url(path),
                    data=payload,
                    headers=self._headers(),
                    allow_redirects=False,  # a node must not send prompts elsewhere
                    timeout=aiohttp.ClientTimeout(
                        total=None, sock_connect=self.context.connect_timeout
                    ),
                )
                if response.status >= 400 or 300 <= response.status < 400:
                    raw = await response.read()
                    response.release()
                    return self._failed(response.status, raw)
                if "event-stream" not in response.headers.get("Content-Type", ""):
                    # a server that answers a stream request whole: one object, not a stream
                    raw = await response.read()
                    response.release()
                    return self._whole(WholeReply(200, raw), endpoint, translator.model)
                lines: list[bytes] = []
                while not lines:
                    chunk = await response.content.readany()
                    out = translator.feed(chunk) if chunk else translator.close()
                    lines = _lines(out)
                if translator.cut and len(lines) == 1:
                    # cut before a word for another request: the node is full (503), not
                    # broken; the request is tried again and the learned limit comes down
                    raise NodeFailure(f"node {self.node.name}: {CUT_SHORT}", status=503)
            return OpenAIStreamReply(
                response, translator, lines, self.context.read_timeout, self._done
            )
        except NodeFailure:
            if response is not None:
                response.close()
            raise
        except TimeoutError as exc:
            if response is not None:
                response.close()
            raise NodeFailure(f"node {self.node.name} timed out before answering") from exc
        except (aiohttp.ClientError, ConnectionError, OSError) as exc:
            if response is not None:
                response.close()
            raise NodeFailure(
                f"node {self.node.name} failed: {describe_network_error(exc)}"
            ) from exc

    def _failed(self, status: int, raw: bytes) -> UpstreamReply:
        message = upstream_error_message(raw, status)
        if status == 404:
            raise NodeFailure(message, status=404, not_found=True)
        if status >= 500 or status == 429 or status < 400:
            raise NodeFailure(f"node {self.node.name} answered {status}: {message}", status=status)
        return WholeReply(status, _encode({"error": message}))

    async def show(self, model: str, *, verbose: bool = False) -> UpstreamReply:
        """What such a server can say of a model: it is there, and it completes text."""
        if normalize_model_name(model) not in self._names:
            raise NodeFailure(f"model '{model}' not found", status=404, not_found=True)
        return WholeReply(200, _encode(_show()))


def _show() -> dict[str, Any]:
    return {
        "modelfile": "",
        "parameters": "",
        "template": "",
        "details": {"format": "openai", "family": ""},
        "model_info": {},
        "capabilities": ["completion"],
    }


@hookimpl
def herd_register_backends() -> list[type[Backend]]:
    return [OpenAIBackend]
