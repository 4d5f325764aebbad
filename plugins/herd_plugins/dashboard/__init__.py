"""The dashboard at ``/dashboard``: nine tabs over the fleet, its traffic and its settings.

An ordinary plugin that owns everything it shows: its Litestar routes, its JSON API
(the analytics SQL included), its static files. It reads the router only through the
public :class:`herd.router.Router` (``app.state.router``) and finds the DuckDB trace
sink among ``router.sinks``: with that sink disabled the page says traces are off;
with this plugin disabled none of its routes exist.
The page is plain HTML, CSS and JavaScript modules packaged beside this file
(``static/``), with no build step and nothing fetched from outside, so it works
on a LAN with no internet. Live data comes from ``/dashboard/events`` (Server-Sent
Events, a fleet snapshot every second); everything else from the JSON endpoints under
``/dashboard/api/`` (see :mod:`herd_plugins.dashboard.routes`).

Access: the page and its static files are public (they hold no data). The data follows
the router's client keys (``auth.api_keys``) like any other route. Changes (settings,
pulls, benchmarks; the fleet's drain and undrain) need ``auth.admin_key`` as a bearer
token when one is set, and come only from this machine when none is.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any

from herd import hookimpl
from litestar import Request, Response, get
from litestar.datastructures import CacheControlHeader
from litestar.plugins import InitPluginProtocol
from litestar.static_files import create_static_files_router

from herd_plugins.dashboard.actions import PullTracker
from herd_plugins.dashboard.bench import BenchmarkRunner
from herd_plugins.dashboard.monitor import FleetMonitor
from herd_plugins.dashboard.routes import ALL_ROUTES

if TYPE_CHECKING:
    from litestar.config.app import AppConfig

__all__ = ["STATIC_DIR", "DashboardPlugin"]

STATIC_DIR = Path(__file__).with_name("static")
PUBLIC = {"herd_auth": "public"}
_HTML = "text/html; charset=utf-8"


@get("/dashboard", opt=PUBLIC, include_in_schema=False)
async def page(request: Request[Any, Any, Any]) -> Response[bytes]:
    """The dashboard page (one HTML file; the tabs are JavaScript modules).

    The page names its files relative to itself (``dashboard/static/...``), so that behind a
    proxy serving herd under a prefix they keep it: it must be read at ``.../dashboard``.
    ``.../dashboard/`` is sent there, by a relative redirect that keeps the prefix too.
    """
    if request.scope["raw_path"].endswith(b"/"):  # (Litestar strips it from "path")
        query = request.scope["query_string"]
        target = "../dashboard" + ("?" + query.decode("latin-1") if query else "")
        return Response(b"", status_code=308, headers={"Location": target})
    return Response(
        _index_html(),
        # content-type as a header: as a text/* media_type Litestar would add a second charset
        headers={"Cache-Control": "no-cache", "content-type": _HTML},
    )


@functools.cache
def _index_html() -> bytes:
    return (STATIC_DIR / "index.html").read_bytes()


class DashboardPlugin(InitPluginProtocol):
    """Adds the page, its static files, its API and the fleet monitor to one app."""

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        monitor = FleetMonitor()
        runner = BenchmarkRunner()
        pulls = PullTracker()
        monitor.pulls = pulls
        app_config.state["dashboard_monitor"] = monitor
        app_config.state["dashboard_bench"] = runner
        app_config.state["dashboard_pulls"] = pulls
        static = create_static_files_router(
            path="/dashboard/static",
            directories=[STATIC_DIR],
            opt=PUBLIC,
            cache_control=CacheControlHeader(no_cache=True),
            name="dashboard-static",
        )
        app_config.route_handlers.extend([page, static, *ALL_ROUTES])
        app_config.on_startup.append(monitor.start)
        # before the gateway closes its HTTP session and sinks
        app_config.on_shutdown[:0] = [runner.cancel, pulls.cancel, monitor.stop]
        return app_config


@hookimpl
def herd_register_litestar_plugins(settings: Any) -> list[Any]:
    return [DashboardPlugin()]
