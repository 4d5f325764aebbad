"""Deterministic text, token, vector and tool-call generators of the emulator.

Everything here is a pure function of its arguments, so a test can compute exactly what the
emulator will answer: ``"".join(expected_reply("llama3.2:3b", "hi", 24))`` is the content of a
24-token reply to the last user message ``"hi"``.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import string
from collections.abc import Iterator
from typing import Any

from herd_sim.names import model_key

_VOCABULARY = (
    "the a of and to in is it that for on with as was at by this from be are or an herd "
    "llama model token stream node fleet router gateway request answer context memory "
    "cache layer vector signal queue score field river mountain valley cloud light green "
    "quiet bright swift gentle steady simple clear small large warm cold early late open "
    "close north south east west water stone forest meadow harbor lantern compass "
    "journey garden window morning evening summer winter autumn spring engine circuit "
    "packet socket thread kernel buffer scheduler replica shard cluster reads writes "
    "carries follows builds finds keeps moves holds turns brings shows sends takes makes "
    "gives learns grows runs walks"
)
WORDS = tuple(_VOCABULARY.split())
"""The vocabulary of the deterministic replies."""

_ID_ALPHABET = string.ascii_lowercase + string.digits


def _rng(*parts: object) -> random.Random:
    """A ``random.Random`` seeded from a stable hash of ``parts`` (not Python's ``hash``)."""
    text = "\x1f".join(str(part) for part in parts)
    digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
    return random.Random(int.from_bytes(digest, "big"))


def _words(rng: random.Random) -> Iterator[str]:
    """Endless sentences: capitalised first word, 5 to 11 words, a full stop at the end."""
    first = True
    while True:
        length = rng.randint(5, 11)
        for position in range(length):
            word = rng.choice(WORDS)
            if position == 0:
                word = word.capitalize()
            if position == length - 1:
                word += "."
            yield word if first else " " + word
            first = False


def _take(iterator: Iterator[str], count: int) -> list[str]:
    return [next(iterator) for _ in range(max(0, count))]


def expected_reply(
    model: str,
    prompt_text: str,
    n_tokens: int,
    seed: int = 0,
    request_seed: int | None = None,
) -> list[str]:
    """The first ``n_tokens`` content tokens the emulator streams for this request.

    Args:
        model: Model name; normalised, so ``llama3.2`` and ``llama3.2:latest`` agree.
        prompt_text: The chat request's last user message, or the generate ``prompt``.
        n_tokens: How many tokens (one per stream chunk).
        seed: ``SimConfig.seed`` of the emulator.
        request_seed: ``options.seed`` of the request (``None`` or ``-1`` when unset).

    Returns:
        Tokens; the first has no leading space, the others start with one.

    Example:
        >>> tokens = expected_reply("llama3.2:3b", "Why is the sky blue?", 4)
        >>> len(tokens), tokens[1].startswith(" ")
        (4, True)
    """
    rng = _rng("reply", seed, model_key(model), _seed_part(request_seed), prompt_text)
    return _take(_words(rng), n_tokens)


def expected_thinking(
    model: str,
    prompt_text: str,
    n_tokens: int,
    seed: int = 0,
    request_seed: int | None = None,
) -> list[str]:
    """The thinking tokens a thinking model streams before its reply (same arguments)."""
    rng = _rng("thinking", seed, model_key(model), _seed_part(request_seed), prompt_text)
    return _take(_words(rng), n_tokens)


def _seed_part(request_seed: int | None) -> str:
    return "" if request_seed is None or request_seed == -1 else str(request_seed)


def json_reply(tokens: list[str], response_format: Any) -> list[str]:
    """The content tokens of a reply with ``format`` set: a JSON document.

    ``"json"`` (or a schema without required properties) wraps the words:
    ``{"reply": "<words>"}`` as ``['{"reply": "', *tokens, '"}']``. A schema with ``required``
    properties gives ``tool_call_arguments(schema)`` as JSON, in 8-character pieces.

    Example:
        >>> "".join(json_reply(["Blue", " sky."], "json"))
        '{"reply": "Blue sky."}'
    """
    if isinstance(response_format, dict) and response_format.get("required"):
        text = json.dumps(tool_call_arguments(response_format))
        return [text[start : start + 8] for start in range(0, len(text), 8)]
    return ['{"reply": "', *tokens, '"}']


def count_tokens(text: str) -> int:
    """Token estimate used for every prompt count: one token per 4 characters, rounded up."""
    return (len(text) + 3) // 4


def token_ids(text: str, count: int) -> list[int]:
    """``count`` stable pseudo token ids for ``text`` (the generate ``context`` array)."""
    rng = _rng("ids", text)
    return [rng.randrange(1, 128_000) for _ in range(max(0, count))]


def embedding_vector(model: str, text: str, length: int, seed: int = 0) -> list[float]:
    """Deterministic unit-length (L2) vector of ``length`` floats for ``text``."""
    rng = _rng("embed", seed, model_key(model), text)
    values = [rng.gauss(0.0, 1.0) for _ in range(length)]
    return normalise(values)


def legacy_embedding_vector(model: str, text: str, length: int, seed: int = 0) -> list[float]:
    """The ``/api/embeddings`` vector: the same direction, not unit length."""
    magnitude = 5.0 + _rng("magnitude", seed, model_key(model), text).random() * 20.0
    return [value * magnitude for value in embedding_vector(model, text, length, seed)]


def normalise(values: list[float]) -> list[float]:
    """Scale ``values`` to unit L2 norm (all-zero input stays zero)."""
    norm = math.sqrt(sum(value * value for value in values))
    if norm == 0.0:
        return list(values)
    return [value / norm for value in values]


def tool_call_id(model: str, prompt_text: str, tool_name: str, seed: int = 0) -> str:
    """``call_`` plus 8 lowercase alphanumerics, stable for the same request."""
    rng = _rng("call", seed, model_key(model), prompt_text, tool_name)
    return "call_" + "".join(rng.choice(_ID_ALPHABET) for _ in range(8))


def tool_call_arguments(parameters: dict[str, Any] | None) -> dict[str, Any]:
    """Arguments for a tool call: one value per *required* property, chosen by JSON type.

    string -> the first ``enum`` value or ``"sim-<property>"``; integer -> 1; number -> 1.5;
    boolean -> true; array -> []; object -> {}; null or unknown -> null.

    Example:
        >>> tool_call_arguments({"type": "object", "required": ["city"],
        ...                      "properties": {"city": {"type": "string"}}})
        {'city': 'sim-city'}
    """
    if not isinstance(parameters, dict):
        return {}
    properties = parameters.get("properties")
    properties = properties if isinstance(properties, dict) else {}
    required = parameters.get("required")
    if not isinstance(required, list):
        return {}
    return {
        name: _value_for(name, properties.get(name)) for name in required if isinstance(name, str)
    }


def _value_for(name: str, schema: Any) -> Any:
    if not isinstance(schema, dict):
        return None
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return enum[0]
    json_type = schema.get("type")
    if isinstance(json_type, list):
        json_type = next((kind for kind in json_type if kind != "null"), "null")
    samples: dict[str, Any] = {
        "string": f"sim-{name}",
        "integer": 1,
        "number": 1.5,
        "boolean": True,
        "array": [],
        "object": {},
    }
    return samples.get(json_type) if isinstance(json_type, str) else None
