"""What the router changes in a body on its way to a node: num_ctx, keep_alive, model.

Context protection: Ollama reloads a model whenever a request's ``num_ctx`` differs from
the context the model is loaded with, which costs a cold start for everyone using it.
Modes (YAML ``routing.context_protection``):

``pin`` (default)
    No ``num_ctx``, or a smaller one than loaded: send the loaded context, so nothing
    reloads. A larger one passes through (the ranking already preferred a node with a
    big-enough copy) and the trace notes the reload.
``strip``
    A ``num_ctx`` not larger than the loaded one is removed (the node's default applies).
``warn``
    Nothing changes; a request that will reload the model is noted in its trace.
``passthrough``
    Nothing changes, nothing is noted.

Keep-alive: the client's ``keep_alive`` always passes through; YAML ``routing.keep_alive``
gives a default per model (``"*"`` for all) for requests that send none.
"""

from __future__ import annotations

from typing import Any

import msgspec

from herd.interfaces import InferenceRequest, NodeView
from herd.names import normalize_model_name
from herd.settings import RoutingSettings

__all__ = ["INFERENCE_ENDPOINTS", "BodyShaper"]

INFERENCE_ENDPOINTS = frozenset({"chat", "generate", "embed", "embeddings"})
_decode = msgspec.json.Decoder(dict).decode


NODE_DEFAULT_NUM_CTX = 4096  # Ollama's num_ctx when neither the client nor a load says


class BodyShaper:
    """Decides, per attempt, the exact body one node receives."""

    def __init__(self, routing: RoutingSettings) -> None:
        self.mode = routing.context_protection
        self.keep_alive: dict[str, float | str] = {
            (name if name == "*" else normalize_model_name(name)): value
            for name, value in routing.keep_alive.items()
        }

    def context_for(self, request: InferenceRequest, view: NodeView) -> int:
        """The ``num_ctx`` the node will run this request with (0 = the node's default)."""
        loaded = view.loaded.get(request.model_key)
        loaded_ctx = loaded.context_length if loaded is not None else 0
        loaded_ctx = loaded_ctx or view.loading.get(request.model_key, 0)
        asked = request.num_ctx
        if self.mode == "pin" and loaded_ctx and (asked is None or asked < loaded_ctx):
            return loaded_ctx
        return asked or 0

    def shape(
        self,
        request: InferenceRequest,
        view: NodeView,
        original: bytes | None,
        served_name: str = "",
    ) -> None:
        """Set what ``view`` should receive for this attempt: ``request.raw_body`` (the
        client's bytes, unchanged) or ``request.shaped`` (a changed copy of the body, left
        as a dict: an Ollama backend encodes it, a translating one reads it).

        Args:
            request: The request; ``notes`` gains a line for each visible change.
            view: The node about to be tried.
            original: The client's body bytes (None when the route built ``body``).
            served_name: The model to name in the body when it differs from the client's.
        """
        self._check_overflow(request, view)
        top: dict[str, Any] = {}
        options: dict[str, Any] = {}
        drop_num_ctx = False
        if served_name:
            top["model"] = served_name
        if self.mode != "passthrough":
            drop_num_ctx = self._protect_context(request, view, options)
        if self.keep_alive:
            default = self.keep_alive.get(request.model_key, self.keep_alive.get("*"))
            if default is not None and "keep_alive" not in self._body(request, original):
                top["keep_alive"] = default
        if not (top or options or drop_num_ctx):
            request.raw_body, request.shaped = original, None
            return
        data = dict(self._body(request, original))
        data.update(top)
        if options or drop_num_ctx:
            merged = dict(data.get("options") or {})
            merged.update(options)
            if drop_num_ctx:
                merged.pop("num_ctx", None)
            data["options"] = merged
        request.raw_body, request.shaped = None, data

    def _check_overflow(self, request: InferenceRequest, view: NodeView) -> None:
        """Make a truncation visible: a prompt longer than the context the node will run
        the model with is cut by the node (Ollama keeps its end) without a word, so say
        so in the trace and in ``X-Herd-Context``. Context-fit sends such a prompt to a
        node whose context holds it when there is one; this is what is left."""
        context = self.context_for(request, view) or NODE_DEFAULT_NUM_CTX
        tokens = request.prompt_tokens
        if tokens <= context:
            request.context_overflow = ""  # a retry elsewhere may fit
            return
        request.context_overflow = f"truncated; prompt ~{tokens} tokens > num_ctx {context}"
        request.notes.append(
            f"prompt ~{tokens} tokens > context {context} on {view.name}: the node truncates "
            "it (no node runs the model with a context that holds it)"
        )

    def _protect_context(
        self, request: InferenceRequest, view: NodeView, options: dict[str, Any]
    ) -> bool:
        loaded = view.loaded.get(request.model_key)
        loaded_ctx = loaded.context_length if loaded is not None else 0
        loaded_ctx = loaded_ctx or view.loading.get(request.model_key, 0)
        asked = request.num_ctx
        if not loaded_ctx or asked == loaded_ctx:
            return False
        if asked is not None and asked > loaded_ctx:
            request.notes.append(
                f"num_ctx {asked} > loaded {loaded_ctx} on {view.name}: the model reloads"
            )
            return False
        if self.mode == "pin":
            options["num_ctx"] = loaded_ctx
            if asked is not None:
                request.notes.append(
                    f"num_ctx {asked} pinned to the loaded {loaded_ctx} on {view.name}"
                )
            return False
        if asked is None:
            return False
        if self.mode == "strip":
            request.notes.append(f"num_ctx {asked} removed (loaded {loaded_ctx} on {view.name})")
            return True
        request.notes.append(  # warn
            f"num_ctx {asked} differs from loaded {loaded_ctx} on {view.name}: the model reloads"
        )
        return False

    @staticmethod
    def _body(request: InferenceRequest, original: bytes | None) -> dict[str, Any]:
        if request.body:
            return request.body
        if original:
            request.body = _decode(original)
            return request.body
        return {}
