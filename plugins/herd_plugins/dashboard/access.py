"""Who may change things from the dashboard.

Every route that changes the fleet carries the route option :data:`ADMIN`; the router's
access check (the same one for built-in and plugin routes) then asks for the admin key
when one is set, or a client on this machine when none is, and refuses cross-site
requests. So the dashboard holds no check of its own to keep in step.
"""

from __future__ import annotations

from typing import Any

from litestar import Request

__all__ = ["ADMIN", "actor"]

ADMIN = {"herd_auth": "admin"}
"""Route option: the router lets only an administrator call the route (see the module)."""


def actor(request: Request[Any, Any, Any]) -> str:
    """Who did a change, for its log line and trace: ``admin`` or ``local``."""
    return "admin" if request.app.state.router.settings.auth.admin_key else "local"
