"""The Ollama backend: talks to a node's Ollama API (replies through herd.node_http, polls
through the router's shared aiohttp session)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import aiohttp
import msgspec
from herd import hookimpl
from herd.interfaces import (
    Backend,
    BackendContext,
    InferenceRequest,
    LoadedModel,
    ModelEntry,
    NodeFailure,
    NodeReport,
    StreamBroken,
    UpstreamReply,
)
from herd.names import normalize_model_name
from herd.net import describe_network_error
from herd.node_http import NodeHttpClient, NodeHttpError, NodeResponse
from herd.settings import NodeConfig

from herd_plugins.backend_ollama_replies import OllamaReply, join_lines

_ENDPOINT_PATHS = {
    "chat": "/api/chat",
    "generate": "/api/generate",
    "embed": "/api/embed",
    "embeddings": "/api/embeddings",
}
_JSON = {"Content-Type": "application/json"}
_STREAMED = frozenset({"chat", "generate"})  # endpoints whose answers Ollama may stream
_decode_json = msgspec.json.Decoder(dict).decode
_encode = msgspec.json.encode


def _describe(exc: BaseException) -> str:
    return describe_network_error(exc)


def _error_message(body: bytes, status: int) -> str:
    try:
        data = _decode_json(body)
        if isinstance(data.get("error"), str):
            return data["error"]
    except (msgspec.DecodeError, AttributeError):
        pass
    text = body.decode("utf-8", "replace").strip()
    return text or f"HTTP {status}"


class OllamaBackend(Backend):
    """A node running Ollama (or herd-sim)."""

    name = "ollama"
    capabilities = frozenset({"text", "embed"})
    _SHOW_PER_POLL = 8  # capability look-ups per poll: a node with 200 models learns them in turn

    def __init__(self, node: NodeConfig, config: Any, context: BackendContext) -> None:
        super().__init__(node, config, context)
        # What /api/show said a model can do, by digest (a model's capabilities never change)
        self._capabilities: dict[str, list[str]] = {}
        # The server's base URL: Ollama's API is under /api, so a URL written with it
        # (http://gpu:11434/api, as a client's base would be) means the same server.
        self._base = node.url.rstrip("/").removesuffix("/api")
        # Requests that open a reply (inference, show, pull, ...) go through herd's lean
        # client, with its own keep-alive pool to this node; polls use the shared session.
        self._client = NodeHttpClient(
            self._base,
            connect_timeout=context.connect_timeout,
            read_timeout=context.read_timeout,
        )

    async def close(self) -> None:
        await self._client.close()

    def _url(self, path: str) -> str:
        return self._base + path

    def open(self, request: InferenceRequest) -> Coroutine[Any, Any, UpstreamReply]:  # type: ignore[override]
        # (not async: _open's coroutine, returned, is what the caller awaits; a request's
        # every wake-up passes one level fewer)
        path = _ENDPOINT_PATHS.get(request.endpoint)
        if path is None:
            raise NodeFailure(f"ollama backend cannot serve {request.endpoint!r}", retryable=False)
        headers = None
        if request.traceparent:
            headers = {**_JSON, "traceparent": request.traceparent}
        opened = self._open("POST", path, request.encoded_body(), headers)
        if request.stream or request.endpoint not in _STREAMED:
            return opened
        return self._whole(opened)

    async def _whole(self, opened: Coroutine[Any, Any, UpstreamReply]) -> UpstreamReply:
        """A reply the client asked for whole (``stream: false``). A node that streams it
        anyway (a proxy, or a server that ignores the flag) has its lines read and joined
        into the one object Ollama sends: else the client would get lines it did not ask
        for, or (translated) only the first of them."""
        reply = await opened
        if not reply.streaming or reply.status >= 400:
            return reply
        try:
            lines = [reply.first]
            async for line in reply.rest():
                lines.append(line)
        except StreamBroken as exc:
            raise NodeFailure(f"node {self.node.name} failed mid-answer: {exc}") from exc
        finally:
            await reply.aclose()
        try:
            whole = join_lines(lines)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise NodeFailure(
                f"node {self.node.name} sent a line that is not a JSON object", status=502
            ) from exc
        return OllamaReply(reply.status, "application/json; charset=utf-8", whole)

    async def show(self, model: str, *, verbose: bool = False) -> UpstreamReply:
        body = {"model": model, "verbose": True} if verbose else {"model": model}
        return await self._open("POST", "/api/show", _encode(body))

    async def pull(self, model: str, *, stream: bool = True) -> UpstreamReply:
        return await self._open("POST", "/api/pull", _encode({"model": model, "stream": stream}))

    async def delete(self, model: str) -> UpstreamReply:
        return await self._open("DELETE", "/api/delete", _encode({"model": model}))

    async def copy(self, source: str, destination: str) -> UpstreamReply:
        body = _encode({"source": source, "destination": destination})
        return await self._open("POST", "/api/copy", body)

    async def unload(self, model: str) -> UpstreamReply:
        body = _encode({"model": model, "keep_alive": 0, "prompt": ""})
        return await self._open("POST", "/api/generate", body)

    async def _open(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str] | None = None
    ) -> UpstreamReply:
        try:
            response = await self._client.request(
                method,
                path,
                body,
                headers or (_JSON if body is not None else None),
                first_byte_timeout=self.context.first_byte_timeout,
            )
        except TimeoutError as exc:
            raise NodeFailure(f"node {self.node.name} timed out before answering") from exc
        except (NodeHttpError, OSError) as exc:
            raise NodeFailure(f"node {self.node.name} unreachable: {_describe(exc)}") from exc
        try:
            return await self._first(response, path)
        except NodeFailure:
            response.close()
            raise
        except TimeoutError as exc:
            response.close()
            raise NodeFailure(f"node {self.node.name} timed out before answering") from exc
        except (NodeHttpError, OSError) as exc:
            response.close()
            raise NodeFailure(f"node {self.node.name} failed: {_describe(exc)}") from exc
        except BaseException:  # cancelled: the connection must not go back half read
            response.close()
            raise

    async def _first(self, response: NodeResponse, path: str) -> UpstreamReply:
        """The reply up to its first NDJSON line (the whole body when it is not a stream)."""
        status = response.status
        if 300 <= status < 400:
            raise NodeFailure(
                f"node {self.node.name} answered a redirect ({status}); "
                "herd does not follow redirects from nodes",
                status=status,
            )
        ctype = response.headers.get("content-type", "application/json")
        if status >= 400:
            raw = await response.read_all()
            message = _error_message(raw, status)
            if status == 404 and path != "/api/pull":
                raise NodeFailure(message, status=404, not_found=True)
            if status >= 500:
                raise NodeFailure(
                    f"node {self.node.name} answered {status}: {message}", status=status
                )
            return OllamaReply(status, ctype, raw)
        if "ndjson" not in ctype:
            return OllamaReply(status, ctype, await response.read_all())
        buffer = b""
        read = response.read
        while True:
            newline = buffer.find(b"\n")
            if newline >= 0:
                first, buffer = buffer[: newline + 1], buffer[newline + 1 :]
                if len(first) > 1:
                    break
                continue
            chunk = await read()
            if not chunk:
                first, buffer = buffer, b""
                if not first.strip():
                    raise NodeFailure(f"node {self.node.name} sent an empty stream", status=502)
                first += b"\n"
                break
            buffer += chunk
        response.end_deadline()
        return OllamaReply(status, ctype, first, buffer, response)

    async def poll(self) -> NodeReport:
        async with asyncio.timeout(self.context.poll_timeout):
            # (an Ollama before 0.1.38 has no /api/ps, and a compatible server may have no
            # /api/version: neither makes the node offline, only its list of models does)
            version, tags, ps = await asyncio.gather(
                self._get_json("/api/version", optional=True),
                self._get_json("/api/tags"),
                self._get_json("/api/ps", optional=True),
            )
        models = [_model_entry(m) for m in tags.get("models") or [] if m.get("name")]
        await self._fill_capabilities(models)
        return NodeReport(
            version=str(version.get("version", "")),
            models=models,
            loaded=[_loaded_model(m) for m in ps.get("models") or [] if m.get("name")],
        )

    async def _fill_capabilities(self, models: list[ModelEntry]) -> None:
        """Capabilities from ``/api/show`` for models ``/api/tags`` lists without them
        (Ollama's list has none), so fallback and routing read what the node says a model
        does rather than guess from its name. Cached by digest; a failed look-up leaves
        the entry as it was and is tried again on a later poll."""
        known = self._capabilities
        missing = [m for m in models if not m.capabilities and (m.digest or m.name) not in known]
        for entry in missing[: self._SHOW_PER_POLL]:
            body = msgspec.json.encode({"model": entry.name})
            try:
                async with asyncio.timeout(self.context.poll_timeout):
                    async with self.context.http.post(
                        self._url("/api/show"), data=body, headers=_JSON, allow_redirects=False
                    ) as response:
                        if response.status != 200:
                            continue
                        data = _decode_json(await response.read())
            except (TimeoutError, aiohttp.ClientError, OSError, msgspec.DecodeError):
                continue
            found = data.get("capabilities")
            if isinstance(found, list):
                known[entry.digest or entry.name] = [str(c) for c in found]
        for index, entry in enumerate(models):  # entries are frozen: replaced, not changed
            if not entry.capabilities:
                found = list(known.get(entry.digest or entry.name, ()))
                models[index] = msgspec.structs.replace(entry, capabilities=found)

    async def _get_json(self, path: str, optional: bool = False) -> dict[str, Any]:
        """The JSON object at ``path``; ``{}`` for an ``optional`` one the node has not (404)."""
        async with self.context.http.get(self._url(path), allow_redirects=False) as response:
            if response.status == 404 and optional:
                return {}
            if response.status != 200:
                raise NodeFailure(f"{path} answered {response.status}", status=response.status)
            data = _decode_json(await response.read())
        return data


def _model_entry(raw: dict[str, Any]) -> ModelEntry:
    name = str(raw.get("name") or raw.get("model"))
    return ModelEntry(
        name=name,
        key=normalize_model_name(name),
        size=int(raw.get("size") or 0),
        digest=str(raw.get("digest") or ""),
        details=raw.get("details") or {},
        capabilities=list(raw.get("capabilities") or []),
        raw=raw,
    )


def _loaded_model(raw: dict[str, Any]) -> LoadedModel:
    name = str(raw.get("name") or raw.get("model"))
    return LoadedModel(
        name=name,
        key=normalize_model_name(name),
        size=int(raw.get("size") or 0),
        size_vram=int(raw.get("size_vram") or 0),
        context_length=int(raw.get("context_length") or 0),
        expires_at=str(raw.get("expires_at") or ""),
        raw=raw,
    )


@hookimpl
def herd_register_backends() -> list[type[Backend]]:
    return [OllamaBackend]
