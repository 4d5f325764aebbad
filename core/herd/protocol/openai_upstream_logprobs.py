"""An OpenAI-compatible server's log probabilities as Ollama's entries (pure).

The answer side of a request that asked for them: a chat choice's ``logprobs.content``
(the same names as Ollama's: ``token``, ``logprob``, ``bytes``, ``top_logprobs``) and a
legacy completion choice's ``{tokens, token_logprobs, top_logprobs}`` both become Ollama's
list of entries, which each front API renders as it does for Ollama nodes
(:mod:`herd.protocol.openai_replies` for OpenAI's).

Example:
    >>> ollama_logprobs({"content": [{"token": "Hi", "logprob": -0.5, "bytes": None}]})
    [{'token': 'Hi', 'logprob': -0.5}]
"""

from __future__ import annotations

from typing import Any

__all__ = ["legacy_logprobs", "ollama_logprobs"]


def ollama_logprobs(logprobs: Any) -> list[dict[str, Any]] | None:
    """A choice's OpenAI ``logprobs`` (``{"content": [...]}``) as Ollama's list of entries
    (``token``, ``logprob``, ``bytes``, ``top_logprobs``: the same names), or None when
    the choice has none."""
    entries = logprobs.get("content") if isinstance(logprobs, dict) else None
    if not isinstance(entries, list) or not entries:
        return None
    return [_logprob_entry(entry, True) for entry in entries if isinstance(entry, dict)]


def _logprob_entry(entry: dict[str, Any], with_top: bool) -> dict[str, Any]:
    logprob = entry.get("logprob")
    out: dict[str, Any] = {
        "token": str(entry.get("token") or ""),
        "logprob": float(logprob) if isinstance(logprob, int | float) else 0.0,
    }
    if isinstance(entry.get("bytes"), list):  # (null from servers that do not send them)
        out["bytes"] = entry["bytes"]
    top = entry.get("top_logprobs") if with_top else None
    if isinstance(top, list) and top:
        out["top_logprobs"] = [_logprob_entry(t, False) for t in top if isinstance(t, dict)]
    return out


def legacy_logprobs(logprobs: Any) -> list[dict[str, Any]] | None:
    """A legacy completion choice's ``logprobs`` (``tokens``, ``token_logprobs``,
    ``top_logprobs`` as one token-to-logprob map per token) as Ollama's entries."""
    if not isinstance(logprobs, dict):
        return None
    tokens, values = logprobs.get("tokens"), logprobs.get("token_logprobs")
    if not isinstance(tokens, list) or not isinstance(values, list) or not tokens:
        return None
    tops = logprobs.get("top_logprobs")
    tops = tops if isinstance(tops, list) else []
    entries = []
    for index, token in enumerate(tokens):
        value = values[index] if index < len(values) else None
        entry: dict[str, Any] = {
            "token": str(token),
            "logprob": float(value) if isinstance(value, int | float) else 0.0,
        }
        top = tops[index] if index < len(tops) else None
        if isinstance(top, dict) and top:
            entry["top_logprobs"] = [
                {"token": str(t), "logprob": float(v) if isinstance(v, int | float) else 0.0}
                for t, v in top.items()
            ]
        entries.append(entry)
    return entries
