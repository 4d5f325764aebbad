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
        self,
        texts: list[str],
        dimensions: int | None,
        *,
        cancel: threading.Event,
        truncate: bool = True,
    ) -> tuple[list[list[float]], int]:
        """One vector per text, and the number of tokens read. A text longer than the
        model's context is cut to it, unless ``truncate`` is false (Ollama's option).

        Raises:
            BadInput: ``dimensions`` is not between 1 and the model's size, or a text is
                longer than the context and ``truncate`` is false.
        """
        lengths = [len(ids) for ids in self._model.tokenizer(texts)["input_ids"]]
        context = int(self._model.max_seq_length or 0)
        if not truncate and context and max(lengths, default=0) > context:
            longest = max(lengths)
            raise BadInput(
                f"the input length exceeds the context length ({longest} tokens, the "
                f"model reads {context}); send shorter inputs or leave truncate on"
            )
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
        tokens = sum(min(n, context) if context else n for n in lengths)  # (what was read)
        return vectors, tokens


def _normalise(vector: list[float]) -> list[float]:
    norm = sum(x * x for x in vector) ** 0.5 or 1.0
    return [x / norm for x in vector]
