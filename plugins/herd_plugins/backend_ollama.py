"""The Ollama backend: talks to a node's Ollama API over the router's shared aiohttp session."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
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
from herd.settings import NodeConfig

_ENDPOINT_PATHS = {
    "chat": "/api/chat",
    "generate": "/api/generate",
    "embed": "/api/embed",
    "embeddings": "/api/embeddings",
}
_JSON = {"Content-Type": "application/json"}
_decode_json = msgspec.json.Decoder(dict).decode
_encode = msgspec.json.encode


class OllamaReply(UpstreamReply):
    """An open Ollama response: the first line is read, the rest streams on demand."""

    __slots__ = ("_buffer", "_closed", "_response")

    def __init__(
        self,
        response: aiohttp.ClientResponse,
        first: bytes,
        buffer: bytes,
        streaming: bool,
    ) -> None:
        self.status = response.status
        self.content_type = response.headers.get("Content-Type", "application/json")
        self.first = first
        self.streaming = streaming
        self._response = response
        self._buffer = buffer
        self._closed = False

    async def rest_blocks(self) -> AsyncIterator[bytes]:
        buffer = self._buffer
        content = self._response.content
        try:
            while True:
                end = buffer.rfind(b"\n") + 1
                if end:
                    block, buffer = buffer[:end], buffer[end:]
                    if b"\n\n" in block or block.startswith(b"\n"):
                        block = b"".join(line + b"\n" for line in block.split(b"\n") if line)
                    if block:
                        yield block
                # No asyncio.timeout per read: it cost ~15 us a block, and the request's
                # ClientTimeout(sock_read=read_timeout) already bounds silence between
                # chunks (aiohttp raises a TimeoutError, described as "timed out").
                chunk = await content.readany()
                if not chunk:
                    break
                buffer += chunk
        except (aiohttp.ClientError, TimeoutError, ConnectionError) as exc:
            raise StreamBroken(_describe(exc)) from exc
        finally:
            self._response.release()
        if buffer.strip():
            yield buffer + b"\n"

    async def rest(self) -> AsyncIterator[bytes]:
        buffer = self._buffer
        content = self._response.content
        try:
            while True:
                newline = buffer.find(b"\n")
                while newline >= 0:
                    line = buffer[: newline + 1]
                    buffer = buffer[newline + 1 :]
                    if len(line) > 1:
                        yield line
                    newline = buffer.find(b"\n")
                chunk = await content.readany()  # sock_read bounds the silence (see above)
                if not chunk:
                    break
                buffer += chunk
        except (aiohttp.ClientError, TimeoutError, ConnectionError) as exc:
            raise StreamBroken(_describe(exc)) from exc
        finally:
            self._response.release()
        if buffer.strip():
            yield buffer if buffer.endswith(b"\n") else buffer + b"\n"

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            self._response.close()


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

    def _url(self, path: str) -> str:
        return self.node.url.rstrip("/") + path

    async def _send(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str] | None = None
    ) -> aiohttp.ClientResponse:
        try:
            return await self.context.http.request(
                method,
                self._url(path),
                data=body,
                headers=headers or (_JSON if body is not None else None),
                allow_redirects=False,  # a node must not send prompts elsewhere
                timeout=aiohttp.ClientTimeout(
                    total=None,
                    sock_connect=self.context.connect_timeout,
                    sock_read=self.context.read_timeout,
                ),
            )
        except (aiohttp.ClientError, ConnectionError, OSError) as exc:
            raise NodeFailure(f"node {self.node.name} unreachable: {_describe(exc)}") from exc

    async def open(self, request: InferenceRequest) -> UpstreamReply:
        path = _ENDPOINT_PATHS.get(request.endpoint)
        if path is None:
            raise NodeFailure(f"ollama backend cannot serve {request.endpoint!r}", retryable=False)
        headers = None
        if request.traceparent:
            headers = {**_JSON, "traceparent": request.traceparent}
        return await self._open("POST", path, request.encoded_body(), headers)

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
        response: aiohttp.ClientResponse | None = None
        try:
            async with asyncio.timeout(self.context.first_byte_timeout):
                response = await self._send(method, path, body, headers)
                if 300 <= response.status < 400:
                    raise NodeFailure(
                        f"node {self.node.name} answered a redirect ({response.status}); "
                        "herd does not follow redirects from nodes",
                        status=response.status,
                    )
                if response.status >= 400:
                    raw = await response.read()
                    response.release()
                    message = _error_message(raw, response.status)
                    if response.status == 404 and path != "/api/pull":
                        raise NodeFailure(message, status=404, not_found=True)
                    if response.status >= 500:
                        raise NodeFailure(
                            f"node {self.node.name} answered {response.status}: {message}",
                            status=response.status,
                        )
                    return OllamaReply(response, raw, b"", False)
                ctype = response.headers.get("Content-Type", "")
                if "ndjson" not in ctype:
                    raw = await response.read()
                    response.release()
                    return OllamaReply(response, raw, b"", False)
                buffer = b""
                content = response.content
                while True:
                    newline = buffer.find(b"\n")
                    if newline >= 0:
                        first, buffer = buffer[: newline + 1], buffer[newline + 1 :]
                        if len(first) > 1:
                            break
                        continue
                    chunk = await content.readany()
                    if not chunk:
                        first, buffer = buffer, b""
                        if not first.strip():
                            raise NodeFailure(f"node {self.node.name} sent an empty stream")
                        first += b"\n"
                        break
                    buffer += chunk
                return OllamaReply(response, first, buffer, True)
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
            raise NodeFailure(f"node {self.node.name} failed: {_describe(exc)}") from exc

    async def poll(self) -> NodeReport:
        async with asyncio.timeout(self.context.poll_timeout):
            version, tags, ps = await asyncio.gather(
                self._get_json("/api/version"),
                self._get_json("/api/tags"),
                self._get_json("/api/ps"),
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

    async def _get_json(self, path: str) -> dict[str, Any]:
        async with self.context.http.get(self._url(path), allow_redirects=False) as response:
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
