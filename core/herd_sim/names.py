"""Ollama model names: ``[host/][namespace/]model[:tag]``, matched case-insensitively."""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_HOST = "registry.ollama.ai"
DEFAULT_NAMESPACE = "library"
DEFAULT_TAG = "latest"

_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,79}")
_HOST = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,349}(:[0-9]{1,5})?")


@dataclass(frozen=True)
class ModelName:
    """A parsed model name with Ollama's defaults filled in."""

    host: str
    namespace: str
    model: str
    tag: str

    @classmethod
    def parse(cls, text: str) -> ModelName:
        """Split ``text``; missing parts take the defaults (the result may be invalid)."""
        text = text.strip()
        path, tag = text, ""
        last_slash = text.rfind("/")
        colon = text.rfind(":")
        if colon > last_slash:
            path, tag = text[:colon], text[colon + 1 :]
        parts = path.split("/")
        model = parts[-1]
        namespace = parts[-2] if len(parts) >= 2 else DEFAULT_NAMESPACE
        host = "/".join(parts[:-2]) if len(parts) >= 3 else DEFAULT_HOST
        return cls(host=host, namespace=namespace, model=model, tag=tag or DEFAULT_TAG)

    @property
    def key(self) -> str:
        """The identity used for matching: the full name, lowercased."""
        return self.full.lower()

    @property
    def full(self) -> str:
        """``registry.ollama.ai/library/llama3.2:latest`` form, as Ollama's errors print it."""
        return f"{self.host}/{self.namespace}/{self.model}:{self.tag}"

    @property
    def display(self) -> str:
        """The shortest form, as ``/api/tags`` and ``/api/ps`` show it."""
        if self.host.lower() != DEFAULT_HOST:
            return self.full
        if self.namespace.lower() != DEFAULT_NAMESPACE:
            return f"{self.namespace}/{self.model}:{self.tag}"
        return f"{self.model}:{self.tag}"

    @property
    def is_valid(self) -> bool:
        """Whether every part is a legal name part."""
        return bool(
            _HOST.fullmatch(self.host)
            and _PART.fullmatch(self.namespace)
            and _PART.fullmatch(self.model)
            and _PART.fullmatch(self.tag)
        )


def model_key(name: str) -> str:
    """Matching key of ``name``: ``Llama3.2`` and ``llama3.2:latest`` give the same key."""
    return ModelName.parse(name).key


def display_name(name: str) -> str:
    """Display form of ``name``: ``llama3.2`` becomes ``llama3.2:latest``."""
    return ModelName.parse(name).display
