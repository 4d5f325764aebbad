"""Carrying a node's answer to the client: the first-byte boundary, framing, disconnects.

The route opens the request on a node *before* it builds the response, so the status
and the ``X-Herd-*`` headers are decided by the node that really produced the first
byte (after any retries). After that byte, a failure can only be reported in-band.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable

import msgspec

from herd._engine.gateway import Gateway
from herd._engine.scheduling.scheduler import Attempt
from herd.interfaces import InferenceRequest, StreamBroken
from herd.protocol.ollama import error_line
from herd.trace import RequestTrace

__all__ = ["Relay", "herd_headers"]

LineTransform = Callable[[bytes], bytes]
log = logging.getLogger("herd.streaming")


class _Final(msgspec.Struct):
    done: bool = False
    prompt_eval_count: int = 0
    eval_count: int = 0
    eval_duration: int = 0
    load_duration: int = 0
    error: str = ""


_decode_final = msgspec.json.Decoder(_Final).decode


def herd_headers(attempt: Attempt, served_model: str) -> dict[str, str]:
    """The headers that say who served a request; true because sent after the first byte."""
    headers = {
        "X-Herd-Node": attempt.node.name,
        "X-Herd-Model": served_model,
        "X-Herd-Retries": str(attempt.retries),
        "X-Herd-Score": f"{attempt.score:.3f}",
    }
    # a prompt the node truncates (see BodyShaper._check_overflow), said where it is read
    request = attempt.slot.request
    if request is not None and request.context_overflow:
        headers["X-Herd-Context"] = request.context_overflow
    return headers


def rename_model(sent: str, served: str) -> LineTransform | None:
    """A transform that puts the client's model name back into each line, when it differs."""
    if sent == served:
        return None
    old = b'"model":' + msgspec.json.encode(served)
    new = b'"model":' + msgspec.json.encode(sent)
    return lambda block: block.replace(old, new)  # works on a block of several lines too


class Relay:
    """One opened request on its way back to the client; records the trace when done."""

    __slots__ = ("attempt", "first_byte_at", "gateway", "request", "served_model")

    def __init__(self, gateway: Gateway, request: InferenceRequest, attempt: Attempt) -> None:
        self.gateway = gateway
        self.request = request
        self.attempt = attempt
        self.first_byte_at = time.time()
        entry = attempt.node.view.models.get(request.model_key)
        self.served_model = entry.name if entry else request.model_key

    def headers(self) -> dict[str, str]:
        return herd_headers(self.attempt, self.served_model)

    async def lines(
        self,
        transform: LineTransform | None = None,
        error_frame: Callable[[str], bytes] = error_line,
        *,
        blocks: bool = False,
    ) -> AsyncIterator[bytes]:
        """The node's NDJSON lines; a break after the first byte becomes an error frame.

        Args:
            transform: Applied to each line (or block), e.g. a rename or a translator.
            error_frame: Renders an in-band error in the client's protocol.
            blocks: Relay lines that arrived together as one write (pass-through only:
                the transform must work on several lines at once).
        """
        reply = self.attempt.reply
        slot = self.attempt.slot  # its chunk count tells the zombie reaper we progress
        status, error = "completed", ""
        last = reply.first
        try:
            yield transform(last) if transform else last
            async for line in reply.rest_blocks() if blocks else reply.rest():
                slot.chunks += 1
                last = line
                if transform is None:
                    yield line
                elif out := transform(line):  # a translator may have nothing to send
                    yield out
            if (
                b'"done":true' not in last
                and b'"error"' not in last
                and _is_inference(self.request)
            ):
                status, error = "failed", f"node {self.attempt.node.name} ended the stream early"
                yield error_frame(error)
        except StreamBroken as exc:
            status = "failed"
            error = f"node {self.attempt.node.name} failed mid-stream: {exc}"
            yield error_frame(error)
        except (asyncio.CancelledError, GeneratorExit):
            status, error = "client_disconnected", "client disconnected"
            raise
        finally:
            await reply.aclose()
            self.done(status, error, last)

    def done(self, status: str, error: str, last: bytes | None) -> None:
        """Release the node's slot and hand the trace on."""
        if last:  # the node's timings, for the adaptive concurrency limit (queues.py)
            self.attempt.slot.last_line = last
        self.attempt.release(failed=status == "failed")
        try:
            self._record(status, error, last)
        except Exception:  # a broken trace must never break the client's reply
            log.exception("could not record the trace of request %s", self.request.request_id)

    def _record(self, status: str, error: str, last: bytes | None) -> None:
        request, attempt = self.request, self.attempt
        now = time.time()
        final = _Final()
        if last:  # a relayed block may hold several lines: the final object is the last
            last = last[last.rfind(b"\n", 0, len(last) - 1) + 1 :]
        if last and (b'"done":true' in last or b'"error"' in last):
            with contextlib.suppress(msgspec.DecodeError, msgspec.ValidationError):
                final = _decode_final(last)
        if final.error and status == "completed":
            status, error = "failed", final.error
        tps = final.eval_count / final.eval_duration * 1e9 if final.eval_duration else 0.0
        decision = attempt.decision
        self.gateway.finish(
            RequestTrace(
                request_id=request.request_id,
                api=request.api,
                endpoint=request.endpoint,
                kind=request.kind,
                model=request.model,
                served_model=self.served_model,
                node=attempt.node.name,
                status=status,
                http_status=attempt.reply.status,
                error=error,
                received_at=request.received_at,
                first_byte_at=self.first_byte_at,
                done_at=now,
                ttft_ms=(self.first_byte_at - request.received_at) * 1000.0,
                latency_ms=(now - request.received_at) * 1000.0,
                prompt_tokens=final.prompt_eval_count,
                completion_tokens=final.eval_count,
                tokens_per_second=tps,
                load_ms=final.load_duration / 1e6,
                retries=attempt.retries,
                excluded_nodes=attempt.tried[:-1],
                scores=decision.scores,
                rejections=decision.rejections,
                tags=request.tags,
                client=request.client,
                stream=request.stream,
                attempts=attempt.attempts,
                traceparent=request.traceparent,
                api_key=request.api_key,
                queue_ms=attempt.queue_ms,
                session=request.session,
                notes=request.notes,
            )
        )


def _is_inference(request: InferenceRequest) -> bool:
    return request.endpoint in ("chat", "generate")
