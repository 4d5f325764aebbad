"""Several routers, one fleet: shared state in Redis or Valkey.

Needs the extra ``pip install 'herd-gateway[cluster]'`` (the ``redis`` client, which
speaks to Valkey too). Nothing to load by hand: setting ``cluster.redis_url`` makes the
router register this plugin. See ``docs/deploy.md`` ("Several routers").
"""

from __future__ import annotations

from herd import hookimpl
from herd.shared_state import SharedState

from herd_contrib.cluster.store import RedisState

__all__ = ["RedisState"]


@hookimpl
def herd_register_state_stores() -> list[type[SharedState]]:
    return [RedisState]
