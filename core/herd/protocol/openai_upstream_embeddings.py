"""An OpenAI-compatible server's ``/v1/embeddings`` answer as the canonical one (pure).

The answer side of an embeddings request a backend sends to such a server: decoded once,
straight into :class:`~herd.protocol.ollama_replies.OllamaEmbedReply` (no dicts, no Ollama
JSON in between), vectors in input order.

Example:
    >>> raw = b'{"data": [{"index": 1, "embedding": [2.0]}, {"index": 0, "embedding": [1.0]}],'
    >>> raw += b' "usage": {"prompt_tokens": 3}}'
    >>> reply = ollama_embed_from_openai(raw, "m")
    >>> reply.embeddings, reply.prompt_eval_count
    ([[1.0], [2.0]], 3)
"""

from __future__ import annotations

import msgspec

from herd.protocol.ollama_replies import OllamaEmbedReply

__all__ = ["ollama_embed_from_openai"]


class _Embedding(msgspec.Struct):
    embedding: list[float]
    index: int = 0


class _Usage(msgspec.Struct):
    prompt_tokens: int = 0


class _EmbeddingList(msgspec.Struct):
    """What such a server answers (the fields herd reads; ``usage`` is optional there)."""

    data: list[_Embedding]
    usage: _Usage | None = None


_decode = msgspec.json.Decoder(_EmbeddingList).decode


def ollama_embed_from_openai(body: bytes, model: str) -> OllamaEmbedReply:
    """The server's embeddings list as Ollama's ``/api/embed`` answer, in input order.

    Raises:
        msgspec.DecodeError, msgspec.ValidationError: not an embeddings list of floats.
    """
    answer = _decode(body)
    vectors = [item.embedding for item in sorted(answer.data, key=lambda item: item.index)]
    tokens = answer.usage.prompt_tokens if answer.usage is not None else 0
    return OllamaEmbedReply(model=model, embeddings=vectors, prompt_eval_count=tokens)
