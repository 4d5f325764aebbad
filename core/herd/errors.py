"""Errors the router answers with, rendered in the client's own protocol."""

from __future__ import annotations

__all__ = ["HerdError", "model_not_found"]


class HerdError(Exception):
    """An error for the client: an HTTP status and a message.

    The route's protocol decides the shape: Ollama ``{"error": msg}``, OpenAI
    ``{"error": {"message", "type", "param", "code"}}``.

    Args:
        status: HTTP status.
        message: Human-readable message.
        retry_after: Seconds for a ``Retry-After`` header (429/503).
        code: A short machine-readable code (OpenAI ``error.code``).
        param: The request field at fault, if one is (OpenAI ``error.param``).
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        retry_after: int | None = None,
        code: str | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after = retry_after
        self.code = code
        self.param = param
        self.attempts: list = []


def model_not_found(model: str) -> HerdError:
    """The 404 for a model no node has, worded as Ollama words it."""
    return HerdError(404, f"model '{model}' not found", code="model_not_found", param="model")
