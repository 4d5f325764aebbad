"""A streamed reply to an HTTP/1.0 request: its body as it is, ended by closing.

HTTP/1.0 has no chunked transfer coding, so a server must not send one to a client that
asked in HTTP/1.0 (RFC 9112, section 6.1): such a client reads the chunk sizes as part of
the body. A reply of no known length is then delimited by the connection's close (section
6.3), as Go's server (Ollama's) and nginx send it. uvicorn chunks every reply that has no
``content-length``, whatever the request's version. HTTP/1.0 clients are not rare in front
of a gateway: nginx speaks it to its upstreams unless told ``proxy_http_version 1.1``, and
ApacheBench speaks nothing else.
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["close_delimited_cycle"]

try:
    from uvicorn.protocols.http.httptools_impl import RequestResponseCycle
except ImportError:  # pragma: no cover - httptools is a dependency
    RequestResponseCycle = None  # type: ignore[assignment,misc]

_LENGTHS = (b"content-length", b"transfer-encoding")


def _framed(headers: Any) -> bool:
    """Whether the app gave the reply's framing itself (a length or a transfer coding)."""
    return any(bytes(name).lower() in _LENGTHS for name, _ in headers)


if RequestResponseCycle is not None:

    class CloseDelimitedCycle(RequestResponseCycle):  # type: ignore[misc,valid-type]
        """uvicorn's request cycle for an HTTP/1.0 request. A reply of no length goes out
        as it is, with ``connection: close``, and the connection closes at its end; a
        reply with a length, and one with no body (HEAD, 1xx, 204, 304), go as uvicorn
        sends them.

        uvicorn's ``send`` does the writing: the cycle says the length is unknown (no
        chunking) and, at the last body message, that what is left is that message.
        """

        close_delimited = False

        async def send(self, message: Any) -> None:
            kind = message["type"]
            if kind == "http.response.start" and not self.response_started:
                status, headers = message["status"], message.get("headers", ())
                if (
                    status >= 200
                    and status not in (204, 304)
                    and self.scope["method"] != "HEAD"
                    and not _framed(headers)
                ):
                    self.close_delimited = True
                    self.keep_alive = False  # (uvicorn's send then says connection: close)
                    self.chunked_encoding = False
                    self.expected_content_length = sys.maxsize
                    # the app's own Connection (an SSE reply's keep-alive) would contradict
                    # the close that ends the reply
                    kept = [h for h in headers if bytes(h[0]).lower() != b"connection"]
                    message = {**message, "headers": kept}
            elif (
                kind == "http.response.body"
                and self.close_delimited
                and not self.response_complete
                and not message.get("more_body", False)
            ):
                self.expected_content_length = len(message.get("body", b""))
            await super().send(message)


def close_delimited_cycle(cycle: Any) -> None:
    """Make ``cycle`` (uvicorn's, for an HTTP/1.0 request, not yet started) send a reply of
    no length close-delimited. uvicorn builds the cycle itself, so its class is changed:
    the subclass only overrides ``send``, which the cycle looks up when the app starts."""
    if RequestResponseCycle is not None and type(cycle) is RequestResponseCycle:
        cycle.__class__ = CloseDelimitedCycle
