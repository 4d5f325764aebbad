"""What the image and transcription routes share: toggles, timeouts, names, errors."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from litestar import Request, Response

from herd._engine.gateway import Gateway
from herd._engine.relay import Relay
from herd._engine.routes.common import client_of, new_request_id, open_attempt, record_rejection
from herd._engine.scheduling.scheduler import Attempt
from herd.errors import HerdError
from herd.interfaces import InferenceRequest
from herd.names import normalize_model_name
from herd.protocol.workloads import upstream_error_message

__all__ = [
    "WORKLOAD_NAMES",
    "check_enabled",
    "default_model",
    "node_error",
    "open_job",
    "relay_for",
    "workload_request",
]

#: The toggle of each switchable workload, and how its endpoints are named in messages.
WORKLOAD_NAMES = {
    "transcription": "Transcription (/api/transcribe, /v1/audio/transcriptions)",
    "image_generation": "Image generation (/api/generate-image, /v1/images/generations)",
}


class WorkloadOff(HerdError):
    """503 for a workload that is switched off; a retry would only repeat it."""


def check_enabled(gateway: Gateway, toggle: str) -> None:
    """Raise a 503 that says how to turn ``toggle`` on, unless it is on.

    Read for every request from ``gateway.settings``, which the settings API may replace
    while the router runs.
    """
    if getattr(gateway.settings.workloads, toggle):
        return
    raise WorkloadOff(
        503,
        f"{WORKLOAD_NAMES[toggle]} is turned off on this router. Turn it on with "
        f"`workloads: {{{toggle}: true}}` in the router's YAML file, the environment variable "
        f"HERD_WORKLOADS__{toggle.upper()}=true, or the dashboard's settings "
        f'(POST /dashboard/api/settings {{"{toggle}": true}}).',
        code="workload_disabled",
    )


def default_model(gateway: Gateway, capability: str) -> str:
    """The first model an online node offers for ``capability`` (for requests naming none).

    Raises:
        HerdError: 404 when no node offers one.
    """
    for node in gateway.fleet.nodes.values():
        view = node.view
        if view.online:
            for entry in view.service_models.get(capability, {}).values():
                return entry.name
    raise HerdError(
        404,
        f"no node offers a {capability} model; add one under nodes[].services "
        "(see docs/workloads.md) and name it in the request's `model`",
        code="model_not_found",
        param="model",
    )


def resolve_name(gateway: Gateway, model: str, api: str) -> tuple[str, str]:
    """The model's name after aliases, as written (sent to the node), and its key."""
    resolved = gateway.pm.hook.herd_resolve_model(model=model, api=api, settings=gateway.settings)
    name = resolved or model
    return name, normalize_model_name(name)


def workload_request(
    gateway: Gateway,
    request: Request[Any, Any, Any],
    *,
    api: str,
    endpoint: str,
    kind: str,
    model: str,
    body: dict[str, Any],
    received: float,
) -> InferenceRequest:
    """A canonical request for an image or transcription job."""
    name, key = resolve_name(gateway, model, api)
    return InferenceRequest(
        api=api,
        endpoint=endpoint,
        kind=kind,
        model=model,
        model_key=key,
        body={**body, "model": name},
        stream=False,
        request_id=new_request_id(),
        received_at=received,
        client=client_of(request),
        traceparent=request.headers.get("traceparent", ""),
    )


async def open_job(
    gateway: Gateway, job: InferenceRequest, capability: str, timeout: float
) -> Attempt:
    """Open the job on the best node; past ``timeout`` give up with 504.

    Giving up closes the connection to the node, and the node cancels the job (the
    ``herd-node-services`` app and Ollama stop work for a client that went away).
    """
    try:
        async with asyncio.timeout(timeout):
            return await open_attempt(gateway, job, capability)
    except TimeoutError:
        what = "image generation" if capability == "image" else "transcription"
        error = HerdError(
            504,
            f"the {what} did not finish within {timeout:g} s and was cancelled on the node "
            f"(raise workloads.{'image' if capability == 'image' else 'transcription'}_timeout "
            "to allow longer)",
            code="timeout",
        )
        record_rejection(gateway, job, error)
        raise error from None


def relay_for(gateway: Gateway, job: InferenceRequest, attempt: Attempt, capability: str) -> Relay:
    """A Relay whose served model is the service's own name for it."""
    relay = Relay(gateway, job, attempt)
    entry = attempt.node.view.service_models.get(capability, {}).get(job.model_key)
    if entry is not None:
        relay.served_model = entry.name
    return relay


def node_error(relay: Relay) -> HerdError:
    """A node's 4xx answer (bad audio, unknown size, ...) as the client's error; traced."""
    reply = relay.attempt.reply
    message = upstream_error_message(reply.first, reply.status)
    relay.done("failed", message, None)
    return HerdError(reply.status, message)


def finished(relay: Relay) -> None:
    """Record a job that completed (its trace, its slot)."""
    relay.done("completed", "", None)


def now() -> float:
    return time.time()


def error_response(
    request: Request[Any, Any, Any], error: HerdError, headers: dict[str, str]
) -> Response[bytes]:
    """An error in the client's protocol with extra headers (e.g. ``x-should-retry``)."""
    from herd._engine.app import render_error  # the app imports the routes

    response = render_error(
        request,
        error.status,
        error.message,
        retry_after=error.retry_after,
        code=error.code,
        param=error.param,
    )
    response.headers.update(headers)
    return response


def workload_off_handler(request: Request[Any, Any, Any], exc: WorkloadOff) -> Response[bytes]:
    """Render the 503 of a switched-off workload; OpenAI's SDK is told not to retry it."""
    return error_response(request, exc, {"x-should-retry": "false"})
