"""OpenAI's ``/v1/embeddings`` request, translated into Ollama's ``/api/embed`` body."""

from __future__ import annotations

from typing import Any

from herd.protocol.openai import EmbeddingRequest, OpenAIRequestError, checked_options

__all__ = ["embedding_format", "embedding_to_ollama"]


def embedding_format(request: EmbeddingRequest) -> str:
    """``float`` (also when absent) or ``base64``, case-insensitively; 400 otherwise."""
    value = (request.encoding_format or "float").lower()
    if value not in ("float", "base64"):
        raise OpenAIRequestError(
            f"Invalid value for 'encoding_format' = {request.encoding_format}. "
            "Supported values: ['float', 'base64'].",
            "encoding_format",
        )
    return value


def embedding_to_ollama(request: EmbeddingRequest, model: str) -> dict[str, Any]:
    """The Ollama ``/api/embed`` body for an embeddings request.

    Raises:
        OpenAIRequestError: ``input`` empty, not text, or token ids (Ollama embeds text).
    """
    embedding_format(request)
    value = request.input
    if isinstance(value, str):
        if not value:
            raise OpenAIRequestError("input must not be empty", "input")
    elif isinstance(value, list) and value:
        for index, item in enumerate(value):
            if not isinstance(item, str):
                raise OpenAIRequestError(
                    "input must be a string or an array of strings: herd's nodes embed "
                    "text, not token ids",
                    f"input[{index}]",
                )
            if not item:
                raise OpenAIRequestError("input strings must not be empty", f"input[{index}]")
    else:
        raise OpenAIRequestError("input must be a non-empty string or array of strings", "input")
    body: dict[str, Any] = {"model": model, "input": value}
    if request.dimensions is not None:
        if request.dimensions < 1:
            raise OpenAIRequestError("dimensions must be at least 1", "dimensions")
        body["dimensions"] = request.dimensions
    if request.truncate is not None:
        body["truncate"] = request.truncate
    if request.options:
        body["options"] = checked_options(request.options)
    if request.keep_alive is not None:
        body["keep_alive"] = request.keep_alive
    return body
