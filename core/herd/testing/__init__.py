"""herd's testing kit: ``herd-sim``, a faithful Ollama emulator, and helpers for tests.

Light on purpose: importing it pulls in aiohttp and msgspec, never the router or litestar.

Example:
    >>> from herd.testing import SimConfig, SimNode
    >>> with SimNode(SimConfig(gen_tps=100)) as node:  # doctest: +SKIP
    ...     ollama.Client(host=node.url).chat(model="llama3.2:3b", messages=[...])
"""

from herd_sim.models import (
    DEFAULT_MODELS,
    EmulatedModel,
    SimConfig,
    loaded_size_bytes,
    parse_size,
)
from herd_sim.runner import SimNode
from herd_sim.text import (
    count_tokens,
    embedding_vector,
    expected_reply,
    expected_thinking,
    tool_call_arguments,
)

__all__ = [
    "DEFAULT_MODELS",
    "EmulatedModel",
    "SimConfig",
    "SimNode",
    "count_tokens",
    "embedding_vector",
    "expected_reply",
    "expected_thinking",
    "loaded_size_bytes",
    "parse_size",
    "tool_call_arguments",
]
