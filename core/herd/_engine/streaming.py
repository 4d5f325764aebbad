"""A streamed response for the relay, without an anyio task group per response.

Litestar's ``Stream`` runs every response in a task group (one task writes, the handler
waits for a disconnect), which costs the router CPU on every streamed request. Here the
writer is the request's own task; a single future waits for ``http.disconnect`` and, when
the client goes, cancels the writer, so the Exchange sees the abort at once (it closes
the node's stream, which stops generation there) exactly as with ``Stream``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from litestar.response import Stream
from litestar.response.streaming import ASGIStreamingResponse

__all__ = ["RelayStream"]


class _RelayASGIResponse(ASGIStreamingResponse):
    __slots__ = ()

    async def send_body(self, send: Any, receive: Any) -> None:
        task = asyncio.current_task()
        assert task is not None
        writing, left = True, False

        def on_message(listener: asyncio.Future[Any]) -> None:
            nonlocal left
            if not writing or listener.cancelled() or listener.exception() is not None:
                return
            if listener.result().get("type") == "http.disconnect":
                left = True
                task.cancel()

        listener = asyncio.ensure_future(receive())
        listener.add_done_callback(on_message)
        try:
            async for chunk in self.iterator:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if not left:
                raise  # cancelled from outside (the server stopping): not ours to swallow
            task.uncancel()  # the client left: the response simply ends here
        finally:
            writing = False
            listener.cancel()


class RelayStream(Stream):
    """``Stream`` for the relay's byte iterators, written without a task group."""

    def to_asgi_response(self, *args: Any, **kwargs: Any) -> Any:
        response = super().to_asgi_response(*args, **kwargs)
        # Same slots, other send_body: the only change from Litestar's streaming response.
        response.__class__ = _RelayASGIResponse
        return response
