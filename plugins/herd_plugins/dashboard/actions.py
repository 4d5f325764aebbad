"""Model actions from the page: pull onto a node (with live progress), delete, unload.

Each is an admin route (:data:`~herd_plugins.dashboard.access.ADMIN`; the page asks
for confirmation first), is logged, and leaves a trace of kind ``action``
in the trace sinks, so the Requests tab lists it beside the requests. Analytics never
count those traces as traffic.

A pull runs in the background: the node's progress events (``status``, ``total``,
``completed``) land in a :class:`PullTracker`, which every fleet snapshot carries to the
page (Server-Sent Events, once a second) and ``GET /dashboard/api/pulls`` returns.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any

from herd import ACTION_KIND, RequestTrace
from herd.errors import HerdError
from litestar import Request, Response, get, post

from herd_plugins.dashboard.access import ADMIN, actor
from herd_plugins.dashboard.store import body_of, json, router_of

__all__ = ["ACTION_TAG", "ROUTES", "PullTracker", "record_action"]

log = logging.getLogger("herd.dashboard")

ACTION_TAG = "source:dashboard"
SHOWN_AFTER_S = 60.0  # a finished pull stays in the snapshot this long


class PullTracker:
    """The pulls started from the page and how far each got."""

    def __init__(self) -> None:
        self.pulls: dict[tuple[str, str], dict[str, Any]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def running(self, node: str, model: str) -> bool:
        entry = self.pulls.get((node, model))
        return entry is not None and entry["status"] == "pulling"

    def start(self, router: Any, node: str, model: str, who: dict[str, str]) -> dict[str, Any]:
        entry = {
            "node": node,
            "model": model,
            "status": "pulling",
            "detail": "starting",
            "total": 0,
            "completed": 0,
            "error": "",
            "started_at": time.time(),
            "at": time.time(),
        }
        self.pulls[(node, model)] = entry
        task = asyncio.get_running_loop().create_task(self._pull(router, entry, who))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return dict(entry)

    async def _pull(self, router: Any, entry: dict[str, Any], who: dict[str, str]) -> None:
        layers: dict[str, tuple[int, int]] = {}  # per blob ("pulling <digest>"): done, size
        try:
            async for event in router.pull_model(entry["node"], entry["model"]):
                status = str(event.get("status") or entry["detail"])
                entry["detail"] = status
                if event.get("total"):
                    layers[status] = (int(event.get("completed") or 0), int(event["total"]))
                    entry["completed"] = sum(done for done, _ in layers.values())
                    entry["total"] = sum(size for _, size in layers.values())
                entry["at"] = time.time()
            entry["status"] = "done"
            entry["completed"] = entry["total"]
        except asyncio.CancelledError:
            entry.update(status="cancelled", error="the router stopped")
            raise
        except HerdError as exc:
            entry.update(status="failed", error=exc.message)
        except Exception as exc:  # a node's odd answer must not kill the loop
            entry.update(status="failed", error=str(exc) or type(exc).__name__)
        finally:
            entry["at"] = time.time()
            record_action(router, "pull", entry, who)

    def listing(self, now: float) -> list[dict[str, Any]]:
        """The pulls under way and those that ended in the last minute."""
        for key, entry in list(self.pulls.items()):
            if entry["status"] != "pulling" and now - entry["at"] > SHOWN_AFTER_S:
                del self.pulls[key]
        return [dict(entry) for entry in self.pulls.values()]

    async def cancel(self, app: Any = None) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


def record_action(router: Any, verb: str, entry: dict[str, Any], who: dict[str, str]) -> None:
    """Log an action and hand its trace to every sink (the Requests tab lists it).

    An action the node refused as the asker's mistake (a 4xx: the model is not on it, a
    bad name) is ``rejected``, as a request's would be; only other failures are ``failed``.
    """
    failed = entry.get("status") == "failed"
    http_status = int(entry.get("http_status") or (502 if failed else 200))
    status = "completed"
    if failed:
        status = "rejected" if 400 <= http_status < 500 else "failed"
    started = float(entry.get("started_at") or time.time())
    done = time.time()
    trace = RequestTrace(
        request_id=f"act-{os.urandom(8).hex()}",
        api="dashboard",
        endpoint=verb,
        kind=ACTION_KIND,
        model=entry["model"],
        served_model=entry["model"],
        node=entry["node"],
        status=status,
        http_status=http_status,
        error=str(entry.get("error") or ""),
        received_at=started,
        done_at=done,
        latency_ms=round((done - started) * 1000, 1),
        tags=[ACTION_TAG, f"action:{verb}"],
        api_key=who["actor"],
        client=who["client"],
        notes=[f"{verb} {entry['model']} on {entry['node']} from the dashboard"],
    )
    log.info(
        "dashboard %s of %s on %s by %s (%s): %s",
        verb,
        entry["model"],
        entry["node"],
        who["actor"],
        who["client"],
        entry.get("error") or "ok",
    )
    for sink in router.sinks:
        try:
            sink.submit(trace)
        except Exception:
            log.exception("trace sink %s rejected an action trace", sink.name)


def _who(request: Request[Any, Any, Any]) -> dict[str, str]:
    client = request.scope.get("client")
    return {"actor": actor(request), "client": f"{client[0]}" if client else ""}


async def _target(request: Request[Any, Any, Any]) -> tuple[Any, str, str]:
    router = router_of(request)
    name = request.path_params["name"]
    if router.node(name) is None:
        known = ", ".join(n.name for n in router.nodes()) or "none"
        raise HerdError(404, f"node '{name}' not found (nodes: {known})")
    body = await body_of(request)
    model = body.get("model") if isinstance(body, dict) else None
    if not isinstance(model, str) or not model.strip() or len(model) > 200:
        raise HerdError(400, 'send {"model": "<name>"}')
    return router, name, model.strip()


@post("/dashboard/api/nodes/{name:str}/pull", opt=ADMIN, include_in_schema=False)
async def pull(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Start pulling a model onto one node; its progress shows in the fleet snapshot."""
    router, name, model = await _target(request)
    tracker: PullTracker = request.app.state.dashboard_pulls
    if tracker.running(name, model):
        raise HerdError(409, f"{model} is already being pulled onto {name}")
    return json(tracker.start(router, name, model, _who(request)), 202)


@get("/dashboard/api/pulls", include_in_schema=False)
async def pulls(request: Request[Any, Any, Any]) -> Response[bytes]:
    """The pulls under way (with their progress) and those that ended in the last minute."""
    return json(request.app.state.dashboard_pulls.listing(time.time()))


async def _act(request: Request[Any, Any, Any], verb: str) -> Response[bytes]:
    router, name, model = await _target(request)
    entry: dict[str, Any] = {"node": name, "model": model, "started_at": time.time()}
    try:
        if verb == "delete":
            await router.delete_model(name, model)
        else:
            await router.unload_model(name, model)
    except HerdError as exc:
        entry.update(status="failed", error=exc.message, http_status=exc.status)
        record_action(router, verb, entry, _who(request))
        raise
    entry["status"] = "done"
    record_action(router, verb, entry, _who(request))
    return json({"node": name, "model": model, "status": "done", "action": verb})


@post("/dashboard/api/nodes/{name:str}/delete", opt=ADMIN, include_in_schema=False)
async def delete(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Delete a model from one node's disk."""
    return await _act(request, "delete")


@post("/dashboard/api/nodes/{name:str}/unload", opt=ADMIN, include_in_schema=False)
async def unload(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Unload a model from one node's memory (``keep_alive: 0``)."""
    return await _act(request, "unload")


ROUTES = [pull, pulls, delete, unload]
