"""herd: one smart endpoint for a fleet of Ollama machines.

The names exported here are the public API plugin authors import.
"""

__version__ = "0.1.0"

from herd.hookspecs import hookimpl, hookspec
from herd.interfaces import (
    Backend,
    BackendContext,
    FallbackPolicy,
    InferenceRequest,
    LoadedModel,
    ModelEntry,
    NodeFailure,
    NodeReport,
    NodeView,
    Signal,
    StreamBroken,
    TraceSink,
    UpstreamReply,
)
from herd.names import normalize_model_name
from herd.trace import ACTION_KIND, RequestTrace

__all__ = [
    "ACTION_KIND",
    "Backend",
    "BackendContext",
    "FallbackPolicy",
    "InferenceRequest",
    "LoadedModel",
    "ModelEntry",
    "NodeFailure",
    "NodeReport",
    "NodeView",
    "RequestTrace",
    "Signal",
    "StreamBroken",
    "TraceSink",
    "UpstreamReply",
    "__version__",
    "hookimpl",
    "hookspec",
    "normalize_model_name",
]
