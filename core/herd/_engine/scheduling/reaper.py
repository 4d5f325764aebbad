"""The zombie reaper: fails streams that stopped making progress and frees their slots.

A request in flight whose stream relays no line for ``routing.stale_timeout_s`` (a hung
node, a client that stopped reading, a response the server never started) is failed: its
upstream connection is closed (generation stops on the node), its slot goes to the next
waiter, and ``reaped`` counts it. The per-chunk cost is one integer increment in the relay;
the reaper itself wakes a few times per timeout, off the request path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from herd._engine.scheduling.queues import QueueBoard, Slot

__all__ = ["ZombieReaper"]

log = logging.getLogger("herd.reaper")


class ZombieReaper:
    """Watches every slot with an open upstream reply; see the module docstring."""

    def __init__(self, board: QueueBoard, stale_timeout_s: float) -> None:
        self.board = board
        self.stale_timeout_s = stale_timeout_s
        self.interval_s = min(5.0, max(0.05, stale_timeout_s / 4))
        self._task: asyncio.Task[None] | None = None
        self._closing: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                self.sweep(time.monotonic())
            except Exception:  # the reaper must outlive any one bad slot
                log.exception("zombie reaper sweep failed")

    def sweep(self, now: float) -> int:
        """Reap the slots without progress for the stale timeout; returns how many."""
        reaped = 0
        for slot in self.board.in_flight_slots():
            if slot.reply is None:
                continue  # before the first byte: first_byte_timeout governs
            if slot.chunks != slot.seen_chunks:
                slot.seen_chunks = slot.chunks
                slot.progress_at = now
            elif now - slot.progress_at >= self.stale_timeout_s:
                self.reap(slot)
                reaped += 1
        return reaped

    def reap(self, slot: Slot) -> None:
        """Fail one slot: note it, free it, close its upstream."""
        request, reply = slot.request, slot.reply
        slot.reaped = True
        self.board.reaped += 1
        note = f"reaped: no progress for {self.stale_timeout_s:g}s on {slot.view.name}"
        if request is not None:
            request.notes.append(note)
            log.warning("request %s %s", request.request_id, note)
        self.board.release(slot, failed=True)
        if reply is not None:
            task = asyncio.get_running_loop().create_task(reply.aclose())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
