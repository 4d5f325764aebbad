"""The errors a request gets when no node could even be tried (or the router itself could
not send it), each saying why."""

from __future__ import annotations

from typing import TYPE_CHECKING

from herd.errors import HerdError, model_not_found
from herd.interfaces import InferenceRequest, NodeView
from herd.net import open_files_limit
from herd.replies import NodeFailure
from herd.trace import AttemptRecord

if TYPE_CHECKING:
    from herd._engine.fleet.registry import Fleet
    from herd._engine.scheduling.ranking import Decision

__all__ = ["nothing_to_try", "router_exhausted", "with_attempts"]


def nothing_to_try(
    fleet: Fleet, request: InferenceRequest, decision: Decision, capability: str
) -> HerdError:
    """Why no node could be tried: 404, 400 (other work), or 503 (offline, draining, full)."""
    key = request.model_key
    views = [n.view for n in fleet.nodes.values()]
    holders = [v for v in views if v.serves(capability, key)]
    if not holders:
        knowing = [v.name for v in views if _knows(v, key)]
        if knowing:  # the fleet has it, for other work: no retry would help
            what = _WORK.get(capability, capability)
            return HerdError(
                400,
                f"model '{request.model}' is not served for {what} by any node "
                f"(it is on: {', '.join(knowing)})",
                code="model_not_supported",
                param="model",
            )
        return model_not_found(request.model)
    usable = [v for v in holders if v.status in ("online", "degraded")]
    if not usable:
        names = ", ".join(v.name for v in holders)
        return HerdError(
            503,
            f"model '{request.model}' is only on nodes that are offline now ({names})",
            retry_after=5,
            code="no_node_available",
        )
    if all(v.draining for v in usable):
        names = ", ".join(v.name for v in usable)
        return HerdError(
            503,
            f"model '{request.model}' is only on nodes that are draining ({names})",
            retry_after=5,
            code="no_node_available",
        )
    reasons = "; ".join(
        f"{v.name}: {decision.rejections[v.name]}" for v in holders if v.name in decision.rejections
    )
    return HerdError(
        503,
        f"no node can serve model '{request.model}' now ({reasons})",
        retry_after=1,
        code="no_node_available",
    )


_WORK = {
    "text": "chat or generate",
    "embed": "embeddings",
    "image": "image generation",
    "transcribe": "transcription",
}


def _knows(view: NodeView, key: str) -> bool:
    """The node has the model, for any capability."""
    return view.has_model(key) or any(key in models for models in view.service_models.values())


def with_attempts(error: HerdError, attempts: list[AttemptRecord]) -> HerdError:
    error.attempts = attempts
    return error


def router_exhausted(node: str, failure: NodeFailure) -> HerdError:
    """The 503 for a request the router could not send for want of file descriptors (or
    buffers, or memory) of its own: said plainly, and not held against the node."""
    files = open_files_limit()
    limit = f" (this process may open {files} files)" if files else ""
    return HerdError(
        503,
        f"the router is out of resources{limit} and could not reach node {node}: "
        f"{failure.message}; retry shortly, or raise the router's open files limit",
        retry_after=1,
    )
