"""The Exchange: one object owns one request, from its decoded form to its trace.

A route decodes the client's body and renders the answer in the client's protocol; all
that happens between is here, in this order::

    resolve (aliases) -> take (intake: tags, hints) -> open (substitute, schedule, queue,
    shape, Backend.open, check the first byte) -> whole / stream (read the node's JSON,
    relay) -> finish (release the slot, one trace)

Three model names, each set once: ``requested`` (what the client sent), ``resolved``
(after aliases; the key routing starts from) and ``served`` (the node's own name for the
model it served, a substitute's when one was served). The trace of every request (served,
failed or rejected) is built by :func:`herd._engine.tracing.build_trace`, called from
:meth:`Exchange._finish` only.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import msgspec

from herd._engine.client_watch import (
    CLIENT_CLOSED_REQUEST,
    ClientWatch,
    client_left,
    why_cancelled,
)
from herd._engine.embed_batches import open_in_batches
from herd._engine.intake import bare_request, collect_tags, describe_request
from herd._engine.node_lines import (
    NodeLines,
    Transform,
    answer_problem,
    model_renamer,
    split_lines,
)
from herd._engine.relay import RelayBody
from herd._engine.scheduling.scheduler import Attempt, substituted_note
from herd._engine.shaping import INFERENCE_ENDPOINTS
from herd._engine.streaming import server_extension
from herd._engine.tracing import build_trace
from herd.errors import HerdError
from herd.interfaces import InferenceRequest, UpstreamReply
from herd.names import normalize_model_name
from herd.protocol.ollama import error_line
from herd.protocol.workloads import upstream_error_message
from herd.trace import AttemptRecord, RequestTrace

__all__ = ["Exchange", "Transform", "model_renamer"]

log = logging.getLogger("herd.exchange")


class Exchange:
    """One client request on its way through the router. Built by a route per request.

    Args:
        gateway: The running router's gateway.
        http: The client's request (its headers, scope and client address are read).
        api: The client's protocol: ``ollama``, ``openai``, ``responses`` or ``anthropic``.
        endpoint: ``chat``, ``generate``, ``embed``, ``embeddings``, ``show``, ``image``,
            ``transcribe``.
        kind: The workload kind: ``text``, ``embed``, ``image`` or ``stt``.
        capability: What the node must offer: ``text``, ``embed``, ``image``, ``transcribe``.
    """

    def __init__(
        self,
        gateway: Any,
        http: Any,
        api: str,
        endpoint: str,
        kind: str = "text",
        capability: str = "text",
    ) -> None:
        self.received_at = time.time()
        self.gateway = gateway
        self.http = http
        self.api = api
        self.endpoint = endpoint
        self.kind = kind
        self.capability = capability
        self.requested = ""
        self.resolved = ""
        self.resolved_name = ""
        self.served = ""
        self.body_model = ""  # the model name shaping must write into the body
        self.rename: Transform | None = None
        self.request: InferenceRequest | None = None
        self.attempt: Attempt | None = None
        self.lines = NodeLines()
        self.first_byte_at = 0.0
        self.watch: ClientWatch | None = None  # the client's connection (herd's server)
        self.finish_after_send = False  # set by the response that writes stream() (see sent)
        self._held: tuple[str, str] | None = None
        self._finished = False

    # -- resolve and take ----------------------------------------------------------------

    def resolve(self, model: str) -> str:
        """Apply aliases to the client's model name; returns the key routing starts from."""
        gateway = self.gateway
        api = "openai" if self.api == "responses" else self.api  # one family of aliases
        written = gateway.resolve_hook(model=model, api=api, settings=gateway.settings)
        self.requested = model
        self.resolved_name = written or model
        self.resolved = normalize_model_name(self.resolved_name)
        return self.resolved

    def take(
        self,
        *,
        body: dict[str, Any] | None = None,
        raw: bytes | None = None,
        hints: Any = None,
        stream: bool = False,
        num_ctx: int | None = None,
        metadata: Any = None,
        user: str | None = None,
        body_names_model: bool = False,
    ) -> InferenceRequest:
        """Build the canonical request once, with its tags and routing hints.

        Args:
            body: The canonical body, when the route built or changed one.
            raw: The client's own bytes, forwarded unchanged when ``body`` is None.
            hints: What :func:`describe_request` reads (a decoded struct or ``body``).
            stream: The client asked for a stream.
            num_ctx: The client's ``options.num_ctx``.
            metadata: The body's ``metadata`` (its tags), already taken out of the body.
            user: OpenAI's ``user`` field (a ``user:`` tag).
            body_names_model: The body already names the resolved model (OpenAI's
                translation does), so an alias needs no rewrite.
        """
        headers = self.http.headers
        request = bare_request(self)
        request.tags = collect_tags(
            headers.get("x-herd-tags"), metadata, user=user, key_name=request.api_key
        )
        if body is not None:
            request.body = body
        else:
            request.raw_body = raw
        request.stream, request.num_ctx = stream, num_ctx
        if hints is not None:
            describe_request(request, hints, headers)
        self.request = request
        if not body_names_model and self.resolved != normalize_model_name(self.requested):
            self.body_model = self.resolved  # an alias: the node is asked for the real model
            if self.api == "ollama":
                self.rename = model_renamer(self.resolved, self.requested)
        return request

    # -- open ----------------------------------------------------------------------------

    async def open(self) -> Attempt:
        """Schedule the request and open it on a node, up to its first byte.

        Raises:
            HerdError: nothing could serve it (traced as rejected or failed).
        """
        request = self.request
        assert request is not None, "take() builds the request first"
        scheduler = self.gateway.scheduler
        if request.endpoint in INFERENCE_ENDPOINTS and request.allow_fallback:
            substitute = scheduler.substitute(request)
            if substitute is not None:
                request.notes.append(substituted_note(request.model_key, substitute))
                request.model_key = self.body_model = substitute
                self.rename = None  # the client sees which model answered
        extension = server_extension(self.http.scope)
        watch = extension.get("client_watch") if extension is not None else None  # (herd's server)
        self.watch = watch
        try:
            if watch is not None and not watch.begin():
                raise client_left()  # (gone before its request was read to the end)
            attempt = None
            if request.kind == "embed":  # long input lists go out in batches
                attempt = await open_in_batches(self, self.gateway.settings.workloads)
            if attempt is None:
                attempt = await self.schedule()
        except HerdError as error:
            raise self.reject(error) from None
        except asyncio.CancelledError:
            error = why_cancelled(watch)  # (the client left, or the router stops)
            if error is None:
                raise
            raise self.reject(error) from None
        finally:
            if watch is not None:
                watch.end()
        self.attempt = attempt
        self.first_byte_at = time.time()
        self.served = self.served_name(attempt)
        return attempt

    def served_name(self, attempt: Attempt) -> str:
        """The serving node's own name for the model it serves (as its list spells it)."""
        view = attempt.node.view
        key = self.request.model_key if self.request is not None else self.resolved
        entry = None
        if self.capability in ("image", "transcribe"):
            entry = view.service_models.get(self.capability, {}).get(key)
        entry = entry or view.models.get(key)
        return entry.name if entry is not None else key

    def schedule(self) -> Coroutine[Any, Any, Attempt]:
        """Rank, queue, shape and open this exchange's request (a batch's part is an
        exchange too), checking each reply into :attr:`lines` (the scheduler's coroutine,
        to await: one level fewer for every wake-up)."""
        request = self.request
        assert request is not None, "take() builds the request first"
        return self.gateway.scheduler.open(
            request, self.capability, body_model=self.body_model, check=self._reply_problem
        )

    def _reply_problem(self, reply: UpstreamReply) -> str:
        """Why a node's reply is broken before its first byte goes out ("" if not)."""
        stream = self.request is not None and self.request.stream
        return answer_problem(reply, self.lines, self.endpoint, stream)

    # -- answers ---------------------------------------------------------------------------

    def headers(self) -> dict[str, str]:
        """The headers that say who served the request; true: sent after its first byte."""
        attempt = self.attempt
        assert attempt is not None
        headers = {
            "X-Herd-Node": attempt.node.name,
            "X-Herd-Model": self.served,
            "X-Herd-Retries": str(attempt.retries),
            "X-Herd-Score": f"{attempt.score:.3f}",
        }
        # a prompt the node truncates (see BodyShaper._check_overflow), said where it is read
        if self.request is not None and self.request.context_overflow:
            headers["X-Herd-Context"] = self.request.context_overflow
        return headers

    @property
    def streaming(self) -> bool:
        """The node answers with a stream (more lines follow the first)."""
        return self.attempt is not None and self.attempt.reply.streaming

    def refusal(self) -> str | None:
        """The node's own error message when it refused the request (its 4xx), else None.

        The client's request caused it, so it is traced as rejected, never as the node's
        failure.
        """
        reply = self.attempt.reply if self.attempt is not None else None
        if reply is None or reply.status < 400:
            return None
        message = upstream_error_message(reply.first, reply.status)
        self._finish("rejected" if reply.status < 500 else "failed", message)
        return message

    def whole(self, translate: Callable[[Any], bytes] | None = None) -> bytes:
        """The node's whole answer (not a stream), in the client's form; traced.

        Args:
            translate: Renders the answer in the client's protocol: from the node's bytes,
                or from the object a translating backend built (``reply.decoded``), so
                such an answer is never encoded and decoded again on its way.

        Raises:
            HerdError: 502 when the answer cannot be translated.
        """
        reply = self.attempt.reply if self.attempt is not None else None
        streamed = self.request is not None and self.request.stream
        if reply is None:
            body: Any = b""
        elif translate is not None and not streamed and reply.decoded is not None:
            body = reply.decoded  # a translating backend's object, rendered as it is
        else:
            body = reply.first if self.rename is None else self.rename(reply.first)
        try:
            if translate is not None and streamed:  # a stream translator: it reads lines
                body = b"".join(translate(line) for line in split_lines(body))
            elif translate is not None:
                body = translate(body)
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
            node = self.attempt.node.name if self.attempt is not None else ""
            self._finish("failed", f"unreadable reply from the node: {exc}")
            raise HerdError(502, f"node {node} sent an unreadable reply") from None
        self._finish("completed", "")
        return body

    def done(self, status: str = "completed", error: str = "") -> None:
        """Finish a request whose answer the route rendered itself (images, speech)."""
        self._finish(status, error)

    def stream_ended(self, status: str, error: str) -> None:
        """The relay ran to its end: finish now, or once its last bytes are written.

        The response writing :meth:`stream` sets ``finish_after_send`` and calls :meth:`sent`
        after its final write, so the client has the end of its answer before the trace,
        the signals and the sinks are fed (a few hundred microseconds of bookkeeping that
        would otherwise sit between the last token and the end of the response).
        """
        if self.finish_after_send:
            self._held = (status, error)
        else:
            self._finish(status, error)

    def sent(self) -> None:
        """The response's last bytes are written: finish a stream that ended (see above)."""
        held = self._held
        if held is not None:
            self._held = None
            self._finish(*held)

    def stream(
        self,
        translate: Transform | None = None,
        error_frame: Callable[[str], bytes] = error_line,
        *,
        blocks: bool = False,
    ) -> RelayBody:
        """The node's lines for the client; a break after the first byte becomes an error frame.

        Args:
            translate: Turns a line into the client's protocol (may return ``b""``).
            error_frame: Renders an in-band error in the client's protocol.
            blocks: Relay lines that arrived together as one write (pass-through only).
        """
        return RelayBody(self, translate, error_frame, blocks)

    # -- the trace -------------------------------------------------------------------------

    def reject(self, error: HerdError) -> HerdError:
        """Trace a request that never reached a node (or gave up on them); returns the error.

        Routes call it for errors found while decoding (bad input, too large, bad tags):
        a client's mistake is traced as rejected, like one found later.
        """
        status = "rejected" if error.status < 500 else "failed"
        if error.status == CLIENT_CLOSED_REQUEST:
            status = "client_disconnected"
        self._finish(
            status,
            error.message,
            http_status=error.status,
            tried=error.attempts,
        )
        return error

    def _finish(
        self,
        status: str,
        error: str,
        *,
        http_status: int = 0,
        tried: Sequence[AttemptRecord] = (),
    ) -> None:
        if self._finished:
            return
        self._finished = True
        if self.request is None:  # refused while its body was read: still traced
            self.request = bare_request(self)
        attempt = self.attempt
        if attempt is not None:
            # the node's own timings, for the adaptive concurrency limit (queues.py)
            attempt.slot.final = self.lines.final
            attempt.release(failed=status == "failed")
        try:
            trace = self.trace(status, error, http_status, list(tried))
            self.gateway.finish(trace)
        except Exception:  # a broken trace must never break the client's reply
            log.exception("could not record the trace of request %s", self.request.request_id)

    def trace(
        self, status: str, error: str, http_status: int, tried: list[AttemptRecord]
    ) -> RequestTrace:
        """The one place a request's trace is put together (see :mod:`.tracing`)."""
        return build_trace(self, status, error, http_status, tried)

    # -- parts and hypotheticals -------------------------------------------------------------

    def part(self, request: InferenceRequest) -> Exchange:
        """An exchange for one part of this request (an embeddings batch): its own trace."""
        part = Exchange(
            self.gateway,
            self.http,
            api=self.api,
            endpoint=self.endpoint,
            kind=self.kind,
            capability=self.capability,
        )
        part.requested, part.resolved, part.resolved_name = (
            self.requested,
            self.resolved,
            self.resolved_name,
        )
        part.body_model, part.request = self.body_model, request
        return part

    def explain(self) -> dict[str, Any]:
        """The ranking the request would get now, without sending it."""
        assert self.request is not None
        return self.gateway.scheduler.explain(self.request, self.capability)
