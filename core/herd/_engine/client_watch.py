"""Hearing that a client left while its request waits for a node.

A request waits in herd's queue, or for the node's first byte, with no response started and
no task reading the client's connection, so nothing else notices the client go. herd's
server gives each connection a :class:`ClientWatch` (in the scope's
:data:`~herd._engine.streaming.DISCONNECT_CALLBACKS` extension, as ``"client_watch"``). The
request's task is watched while it waits (:meth:`ClientWatch.begin`, :meth:`~ClientWatch.end`);
when the connection is lost meanwhile the task is cancelled: a queued request leaves its
queue (and is never sent), and a node still preparing the answer sees its connection closed
and stops, as Ollama does for a client of its own. Behind another server there is no
watch; the request then runs until its answer is written (to nobody).
"""

from __future__ import annotations

import asyncio
from typing import Any

from herd.errors import HerdError

__all__ = [
    "CLIENT_CLOSED_REQUEST",
    "ROUTER_STOPPED",
    "ClientWatch",
    "client_left",
    "router_stopping",
    "why_cancelled",
]

#: The status a request whose client left before its answer began is traced with (nginx's
#: "client closed request"); no client ever reads it.
CLIENT_CLOSED_REQUEST = 499


#: Why a stream cut by the router's shutdown ended (its trace's error, its error frame).
ROUTER_STOPPED = "the router stopped before the answer ended"


def client_left() -> HerdError:
    """The error that ends a request whose client left before its answer began."""
    return HerdError(CLIENT_CLOSED_REQUEST, "the client left while its request waited for a node")


def router_stopping() -> HerdError:
    """The error that ends a request still waiting for a node when the router stops."""
    return HerdError(503, "the router is shutting down; try again", retry_after=1)


class ClientWatch:
    """One connection's watch (HTTP/1.1 serves its requests one at a time).

    Attributes:
        left: The connection is lost.
        stopping: The server is shutting down: a task cancelled now is cancelled for that
            (past the grace period), and its request ends with an error its client can
            read (a 503, or an error frame closing a stream), never cut short.
    """

    __slots__ = ("_cancelled", "_task", "left", "stopping")

    def __init__(self) -> None:
        self.left = False
        self.stopping = False
        self._task: asyncio.Task[Any] | None = None
        self._cancelled = False

    def begin(self) -> bool:
        """Watch the current task while it waits for a node; False when the client has
        left already (the request should not wait at all)."""
        if self.left:
            return False
        self._task = asyncio.current_task()
        return True

    def end(self) -> None:
        """The wait is over (the answer begins: the response watches from here)."""
        self._task = None

    def cancelled_it(self) -> bool:
        """True (once) when the watched task's cancellation is this watch's doing: the
        client left."""
        cancelled, self._cancelled = self._cancelled, False
        return cancelled

    def lost(self) -> None:
        """The connection is lost (called by the server): cancel the waiting task."""
        self.left = True
        task = self._task
        if task is not None:
            self._task = None
            self._cancelled = True
            task.cancel()


def why_cancelled(watch: ClientWatch | None) -> HerdError | None:
    """What the cancellation of a request waiting for a node means for its client: it left
    (:func:`client_left`), or the router stops past its grace period
    (:func:`router_stopping`; the task goes on, uncancelled, to answer it). None for any
    other cancellation, which is left to run its course."""
    if watch is None:
        return None
    if watch.cancelled_it():
        error = client_left()
    elif watch.stopping:
        error = router_stopping()
    else:
        return None
    task = asyncio.current_task()
    if task is not None:
        task.uncancel()  # (the request goes on, to be answered and traced)
    return error
