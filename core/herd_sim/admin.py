"""``/_sim/*``: failure injection and counters (not part of the Ollama API).

=====================  ==========================================================
``POST /_sim/fail``    ``{"count":1,"status":500,"error":"..."}`` next N inference
                       requests (chat, generate, embed, embeddings) fail before any byte
``POST /_sim/hang``    ``{"count":1,"seconds":30}`` next N inference requests wait first
``POST /_sim/die``     ``{"count":1,"after_chunks":0,"error":null}`` next N generations
                       break after K chunks: TCP abort, or an in-band error line
``POST /_sim/silent``  ``{"seconds":3600}`` every request stalls; ``0`` ends it
``POST /_sim/reset``   ``{"models":false}`` disarm all, zero counters (``models``: unload
                       everything and restore the disk)
``GET /_sim/stats``    counters, queue, loaded models, what is armed
=====================  ==========================================================

Every body is optional; omitted fields take the defaults shown.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import msgspec
from aiohttp import web

from herd_sim.control import DieSpec, FailSpec, HangSpec, ResetSpec, SilentSpec
from herd_sim.engine import ENGINE, SimEngine
from herd_sim.wire import SimError, json_response

SpecT = TypeVar("SpecT")


async def _spec(request: web.Request, spec_type: type[SpecT]) -> SpecT:
    body = await request.read()
    try:
        return msgspec.json.decode(body or b"{}", type=spec_type)
    except (msgspec.ValidationError, msgspec.DecodeError) as error:
        raise SimError(400, str(error)) from None


def _control(
    spec_type: type[SpecT], apply: Callable[[SimEngine, SpecT], None]
) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        engine = request.app[ENGINE]
        apply(engine, await _spec(request, spec_type))
        return json_response(engine.snapshot())

    return handler


async def stats(request: web.Request) -> web.Response:
    """``GET /_sim/stats``."""
    return json_response(request.app[ENGINE].snapshot())


def add_admin_routes(app: web.Application) -> None:
    """Register ``/_sim/*`` on ``app``."""
    routes: dict[str, Any] = {
        "/_sim/fail": _control(FailSpec, lambda e, spec: e.faults.arm_fail(spec)),
        "/_sim/hang": _control(HangSpec, lambda e, spec: e.faults.arm_hang(spec)),
        "/_sim/die": _control(DieSpec, lambda e, spec: e.faults.arm_die(spec)),
        "/_sim/silent": _control(SilentSpec, lambda e, spec: e.faults.set_silence(spec.seconds)),
        "/_sim/reset": _control(ResetSpec, lambda e, spec: e.reset(models=spec.models)),
    }
    for path, handler in routes.items():
        app.router.add_post(path, handler)
    app.router.add_get("/_sim/stats", stats)
