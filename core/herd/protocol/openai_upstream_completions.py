"""Canonical ``/api/generate`` requests to an OpenAI server's ``/v1/completions`` (pure).

The prompt side of :mod:`herd.protocol.openai_upstream`: :func:`completion_request_from_ollama`
builds the legacy completions request (Ollama's ``system`` goes before the prompt, as the
server applies no template to a completion), :func:`ollama_generate_from_completion` turns a
whole reply back into an Ollama generate reply, and :class:`GenerateNdjsonFromSse` turns the
SSE stream into Ollama generate NDJSON lines.

Example:
    >>> req = completion_request_from_ollama({"model": "m", "prompt": "Once",
    ...                                       "options": {"num_predict": 4}})
    >>> req.prompt, req.max_tokens
    ('Once', 4)
"""

from __future__ import annotations

import time
from typing import Any

import msgspec

from herd.protocol.openai import CompletionRequest, StreamOptions, TextCompletion, Usage
from herd.protocol.openai_upstream import NdjsonFromSse
from herd.protocol.openai_upstream_logprobs import legacy_logprobs

__all__ = [
    "GenerateNdjsonFromSse",
    "completion_request_from_ollama",
    "ollama_generate_from_completion",
]

_encode = msgspec.json.encode
_decode_completion = msgspec.json.Decoder(TextCompletion).decode


class _TextChoice(msgspec.Struct):
    text: str = ""
    logprobs: dict[str, Any] | None = None
    finish_reason: str | None = None


class _TextChunk(msgspec.Struct):
    """One streamed completions event (an error event has no ``choices``: it fails here)."""

    choices: list[_TextChoice]
    created: int = 0
    usage: Usage | None = None


_decode_text_chunk = msgspec.json.Decoder(_TextChunk).decode
_OPTION_FIELDS = ("temperature", "top_p", "seed", "frequency_penalty", "presence_penalty")


def completion_request_from_ollama(body: dict[str, Any]) -> CompletionRequest:
    """An OpenAI legacy completion request for a canonical ``/api/generate`` body."""
    options = dict(body.get("options") or {})
    prompt = str(body.get("prompt") or "")
    if body.get("system"):
        prompt = f"{body['system']}\n\n{prompt}"
    request = CompletionRequest(
        model=str(body.get("model", "")), prompt=prompt, stream=bool(body.get("stream", True))
    )
    if request.stream:
        request.stream_options = StreamOptions(include_usage=True)
    for name in _OPTION_FIELDS:
        if name in options:
            setattr(request, name, options[name])
    for name in ("top_k", "min_p"):
        if name in options:
            setattr(request, name, options[name])
    if "num_predict" in options and options["num_predict"] > 0:
        request.max_tokens = options["num_predict"]
    if options.get("stop"):
        request.stop = list(options["stop"])
    if body.get("suffix"):
        request.suffix = body["suffix"]
    if body.get("logprobs"):  # (the legacy API's logprobs is how many top tokens, 0 or more)
        request.logprobs = int(body.get("top_logprobs") or 0)
    return request


def _rfc3339(created: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(created))


def ollama_generate_from_completion(body: bytes, model: str) -> dict[str, Any]:
    """A whole OpenAI ``text_completion`` as a whole Ollama ``/api/generate`` reply."""
    completion = _decode_completion(body)
    choice = completion.choices[0] if completion.choices else None
    reply: dict[str, Any] = {
        "model": model,
        "created_at": _rfc3339(completion.created),
        "response": choice.text if choice else "",
        "done": True,
        "done_reason": "length" if choice and choice.finish_reason == "length" else "stop",
    }
    logprobs = legacy_logprobs(choice.logprobs) if choice else None
    if logprobs is not None:
        reply["logprobs"] = logprobs
    if completion.usage is not None:
        reply["prompt_eval_count"] = completion.usage.prompt_tokens
        reply["eval_count"] = completion.usage.completion_tokens
    return reply


class GenerateNdjsonFromSse(NdjsonFromSse):
    """Turns an OpenAI completions SSE stream into Ollama ``/api/generate`` NDJSON lines.

    Feed and close it like :class:`~herd.protocol.openai_upstream.NdjsonFromSse`.
    """

    def _typed(self, payload: bytes) -> bytes:
        chunk = _decode_text_chunk(payload)
        if not self._created:
            self._created = _rfc3339(chunk.created or time.time())
        if chunk.usage is not None:
            self._prompt_tokens = chunk.usage.prompt_tokens
            self._completion_tokens = chunk.usage.completion_tokens
        out = b""
        for choice in chunk.choices[:1]:
            logprobs = legacy_logprobs(choice.logprobs) if choice.logprobs else None
            if choice.text or logprobs:
                self._events += 1
                line = {"model": self.model, "created_at": self._created, "response": choice.text}
                if logprobs:
                    line["logprobs"] = logprobs
                out += _encode({**line, "done": False}) + b"\n"
            if choice.finish_reason is not None:
                self._finish = choice.finish_reason
        return out

    def _done(self) -> bytes:
        self.finished = True
        final: dict[str, Any] = {
            "model": self.model,
            "created_at": self._created or _rfc3339(time.time()),
            "response": "",
            "done": True,
            "done_reason": "length" if self._finish == "length" else "stop",
            "total_duration": int((time.monotonic() - self.started) * 1e9),
        }
        self._fill_usage(final)
        return _encode(final) + b"\n"
