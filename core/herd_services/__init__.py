"""Node-side services: speech-to-text, embeddings and images beside a node's Ollama.

``herd-node-services`` (or ``python -m herd_services``) serves this machine's models
over OpenAI-compatible endpoints; the router reaches them through the ``openai-compat``
backend, listed under the node's ``services``. Each model family needs its extra:
``[stt]`` (faster-whisper), ``[embed]`` (sentence-transformers), ``[image]`` (diffusers).
Nothing here fetches a model: every model is a local directory or an installed package.
"""

from herd_services.app import create_services_app
from herd_services.config import (
    DiffusersModel,
    SentenceModel,
    ServicesConfig,
    ServicesConfigError,
    WhisperModel,
    resolve_model_path,
)
from herd_services.jobs import BadInput, Engine, JobCancelled
from herd_services.server import ServicesHandle, build_engines, serve

__all__ = [
    "BadInput",
    "DiffusersModel",
    "Engine",
    "JobCancelled",
    "SentenceModel",
    "ServicesConfig",
    "ServicesConfigError",
    "ServicesHandle",
    "WhisperModel",
    "build_engines",
    "create_services_app",
    "resolve_model_path",
    "serve",
]
