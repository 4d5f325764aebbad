"""Model names as Ollama matches them.

Ollama treats ``llama3.2``, ``llama3.2:latest`` and
``registry.ollama.ai/library/llama3.2:latest`` as one model, case-insensitively.
The router normalises every name before it compares two of them, and always
echoes the name the client sent.
"""

from __future__ import annotations

from functools import lru_cache

DEFAULT_HOST = "registry.ollama.ai"
DEFAULT_NAMESPACE = "library"
DEFAULT_TAG = "latest"


@lru_cache(maxsize=4096)
def normalize_model_name(name: str) -> str:
    """Return the shortest canonical form of a model name, lowercased, with a tag.

    Args:
        name: A model name as a client or a node wrote it.

    Returns:
        ``model:tag`` or ``namespace/model:tag`` (host kept only when not the default).

    Example:
        >>> normalize_model_name("Llama3.2")
        'llama3.2:latest'
        >>> normalize_model_name("registry.ollama.ai/library/qwen2.5:7B")
        'qwen2.5:7b'
    """
    text = name.strip().lower()
    if not text:
        return ""
    parts = text.split("/")
    last = parts[-1]
    if ":" not in last:
        last = f"{last}:{DEFAULT_TAG}"
    parts[-1] = last
    if len(parts) == 3 and parts[0] == DEFAULT_HOST:
        parts = parts[1:]
    if len(parts) == 2 and parts[0] == DEFAULT_NAMESPACE:
        parts = parts[1:]
    return "/".join(parts)
