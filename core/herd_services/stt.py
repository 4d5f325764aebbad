"""Speech-to-text with faster-whisper (extra ``[stt]``)."""

from __future__ import annotations

import io
import threading
from typing import Any, ClassVar

from herd_services.config import WhisperModel, resolve_model_path
from herd_services.jobs import BadInput, Engine, JobCancelled

__all__ = ["WhisperEngine"]

#: faster-whisper's language codes to the names OpenAI's verbose_json uses.
LANGUAGE_NAMES = {
    "en": "english",
    "de": "german",
    "fr": "french",
    "es": "spanish",
    "it": "italian",
    "nl": "dutch",
    "pt": "portuguese",
    "ja": "japanese",
    "zh": "chinese",
}


class WhisperEngine(Engine):
    """A faster-whisper model; the audio is decoded with PyAV (any common format)."""

    capability: ClassVar[str] = "transcribe"

    def __init__(self, config: WhisperModel, jobs: int = 1) -> None:
        super().__init__(config.name, jobs)
        self.config = config
        self.path = resolve_model_path(config.path)
        self._model: Any = None

    def load(self) -> None:
        from faster_whisper import WhisperModel as FasterWhisper

        self._model = FasterWhisper(
            str(self.path),
            device=self.config.device,
            compute_type=self.config.compute_type,
            cpu_threads=self.config.threads,
            local_files_only=True,
        )

    def transcribe(
        self,
        audio: bytes,
        language: str | None,
        prompt: str | None,
        temperature: float | None,
        *,
        cancel: threading.Event,
        words: bool = False,
    ) -> dict[str, Any]:
        """The ``verbose_json`` result for ``audio`` (with ``words``: each word's times too).

        Raises:
            BadInput: the audio cannot be decoded.
            JobCancelled: ``cancel`` was set between two segments.
        """
        from faster_whisper import decode_audio

        try:
            samples = decode_audio(io.BytesIO(audio))
        except Exception as exc:
            raise BadInput(
                f"the audio could not be decoded (corrupt or an unsupported format): {exc}"
            ) from None
        if len(samples) == 0:
            raise BadInput("the audio file holds no sound")
        segments, info = self._model.transcribe(
            samples,
            language=language or None,
            initial_prompt=prompt or None,
            temperature=temperature if temperature is not None else 0.0,
            beam_size=self.config.beam_size,
            condition_on_previous_text=False,
            word_timestamps=words,
        )
        out, timed = [], []
        for segment in segments:  # a generator: decoding happens as we iterate
            if cancel.is_set():
                raise JobCancelled()
            out.append(
                {
                    "id": segment.id,
                    "seek": segment.seek,
                    "start": round(float(segment.start), 3),
                    "end": round(float(segment.end), 3),
                    "text": segment.text,
                    "tokens": [int(token) for token in segment.tokens],
                    "temperature": float(segment.temperature),
                    "avg_logprob": float(segment.avg_logprob),
                    "compression_ratio": float(segment.compression_ratio),
                    "no_speech_prob": float(segment.no_speech_prob),
                }
            )
            timed += [
                {
                    "word": w.word.strip(),
                    "start": round(float(w.start), 3),
                    "end": round(float(w.end), 3),
                }
                for w in segment.words or ()
            ]
        result = {
            "task": "transcribe",
            "language": LANGUAGE_NAMES.get(info.language, info.language),
            "duration": round(float(info.duration), 3),
            "text": "".join(s["text"] for s in out).strip(),
            "segments": out,
        }
        if words:
            result["words"] = timed
        return result
