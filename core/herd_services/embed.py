"""Embeddings with sentence-transformers (extra ``[embed]``)."""

from __future__ import annotations

import threading
from typing import Any, ClassVar

from herd_services.config import SentenceModel, resolve_model_path
from herd_services.jobs import BadInput, Engine, JobCancelled

__all__ = ["SentenceEngine"]


class SentenceEngine(Engine):
    """A sentence-transformers model; vectors are L2-normalised, as Ollama's are."""

    capability: ClassVar[str] = "embed"

    def __init__(self, config: SentenceModel, jobs: int = 1) -> None:
        super().__init__(config.name, jobs)
        self.config = config
        self.path = resolve_model_path(config.path)
        self._model: Any = None

    def load(self) -> None:
        from sentence_transformers import SentenceTransformer

        self._model = SentenceTransformer(
            str(self.path), device=self.config.device, local_files_only=True
        )

    def embed(
        self, texts: list[str], dimensions: int | None, *, cancel: threading.Event
    ) -> tuple[list[list[float]], int]:
        """One vector per text, and the number of tokens read.

        Raises:
            BadInput: ``dimensions`` is not between 1 and the model's size.
        """
        vectors: list[list[float]] = []
        size = self.config.batch_size
        for start in range(0, len(texts), size):
            if cancel.is_set():
                raise JobCancelled()
            batch = self._model.encode(
                texts[start : start + size], normalize_embeddings=True, convert_to_numpy=True
            )
            vectors.extend(row.tolist() for row in batch)
        if dimensions:
            full = len(vectors[0]) if vectors else 0
            if not 0 < dimensions <= full:
                raise BadInput(f"dimensions must be between 1 and {full}")
            vectors = [_normalise(v[:dimensions]) for v in vectors]
        tokens = sum(len(ids) for ids in self._model.tokenizer(texts)["input_ids"])
        return vectors, tokens


def _normalise(vector: list[float]) -> list[float]:
    norm = sum(x * x for x in vector) ** 0.5 or 1.0
    return [x / norm for x in vector]
