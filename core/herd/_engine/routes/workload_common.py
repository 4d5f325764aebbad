"""What the image and transcription routes share: toggles, timeouts, names, errors."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from litestar import Request, Response

from herd._engine.exchange import Exchange
from herd._engine.gateway import Gateway
from herd._engine.render import render_error
from herd.errors import HerdError

__all__ = [
    "WORKLOAD_NAMES",
    "check_enabled",
    "default_model",
    "open_job",
    "start_job",
    "take_job",
    "unreadable",
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


def start_job(
    request: Request[Any, Any, Any], *, api: str, endpoint: str, kind: str, capability: str
) -> Exchange:
    """The Exchange for an image or transcription job, started now."""
    return Exchange(
        request.app.state.gateway,
        request,
        api=api,
        endpoint=endpoint,
        kind=kind,
        capability=capability,
    )


def take_job(exchange: Exchange, model: str, body: dict[str, Any]) -> None:
    """Build the job's canonical request; the body names the model as aliases write it."""
    exchange.resolve(model)
    exchange.take(body={**body, "model": exchange.resolved_name}, body_names_model=True)


async def open_job(exchange: Exchange, timeout: float) -> None:
    """Open the job on the best node; past ``timeout`` give up with 504 (traced).

    Giving up closes the connection to the node, and the node cancels the job (the
    ``herd-node-services`` app and Ollama stop work for a client that went away).
    A node's own 4xx answer (bad audio, unknown size) becomes the client's error.
    """
    image = exchange.capability == "image"
    try:
        async with asyncio.timeout(timeout):
            await exchange.open()
    except TimeoutError:
        what = "image generation" if image else "transcription"
        raise exchange.reject(
            HerdError(
                504,
                f"the {what} did not finish within {timeout:g} s and was cancelled on the node "
                f"(raise workloads.{'image' if image else 'transcription'}_timeout "
                "to allow longer)",
                code="timeout",
            )
        ) from None
    message = exchange.refusal()
    if message is not None:
        raise HerdError(exchange.attempt.reply.status, message)


def unreadable(exchange: Exchange, problem: ValueError) -> HerdError:
    """A 502 for a node's answer that could not be read; traced as the node's failure."""
    exchange.done("failed", str(problem))
    return HerdError(502, f"node {exchange.attempt.node.name}: {problem}")


def now() -> float:
    return time.time()


def error_response(
    request: Request[Any, Any, Any], error: HerdError, headers: dict[str, str]
) -> Response[bytes]:
    """An error in the client's protocol with extra headers (e.g. ``x-should-retry``)."""
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
