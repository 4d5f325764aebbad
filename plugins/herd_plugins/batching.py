"""A background thread that takes items from a bounded queue and hands them on in batches.

The trace sinks use it to keep blocking work (DuckDB inserts, OTLP exports) off the
event loop: ``offer`` is a queue append, the thread does the rest. The thread wakes when
a batch is full or ``interval`` seconds have passed and writes what is queued, so a busy
router makes few large writes and a quiet one still writes within the interval.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["BatchWorker"]

log = logging.getLogger("herd.traces")


class _Flush:
    """A marker in the queue: everything before it is handed on when ``done`` is set."""

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = threading.Event()


_STOP = object()


class BatchWorker:
    """Batches items for ``write`` on a thread of its own.

    Args:
        name: The thread's name.
        write: Called on the thread with each batch; exceptions are logged, not raised.
        batch_size: Most items in one batch.
        interval: Seconds the first item of a batch may wait.
        queue_size: Items waiting at most; :meth:`offer` refuses more.
        tick: Called on the thread every ``tick_interval`` seconds, first at start.
        tick_interval: Seconds between two ticks.
        settle: Called on the thread after the batches of one wake were handed to
            ``write``, before flushes are confirmed or a tick runs: a writer that hands a
            batch on (to prepare the next meanwhile) waits here until it is written.

    Attributes:
        rejected: Items refused by :meth:`offer` (queue full, or the worker stopped).
    """

    def __init__(
        self,
        name: str,
        write: Callable[[list[Any]], None],
        *,
        batch_size: int,
        interval: float,
        queue_size: int,
        tick: Callable[[], None] | None = None,
        tick_interval: float = math.inf,
        settle: Callable[[], None] | None = None,
    ) -> None:
        self.name = name
        self.write = write
        self.batch_size = batch_size
        self.interval = interval
        self.queue_size = queue_size
        self.tick = tick
        self.tick_interval = tick_interval if tick is not None else math.inf
        self.settle = settle
        self.rejected = 0
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()
        self._closed = False

    @property
    def queued(self) -> int:
        """Items waiting (approximate)."""
        return self._queue.qsize()

    def offer(self, item: Any) -> bool:
        """Queue an item; False (and counted) when the queue is full or the worker stopped."""
        if self._closed or self._queue.qsize() >= self.queue_size:
            self.rejected += 1
            return False
        self._queue.put(item)
        # Event.set() takes a lock and notifies (about 3 us, on the caller's event loop):
        # once per wake is enough. The thread clears the event before it drains the
        # queue, so an item put while the event is still set is drained after the clear.
        if self._queue.qsize() >= self.batch_size and not self._wake.is_set():
            self._wake.set()
        return True

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def flush(self, timeout: float | None = 60.0) -> bool:
        """Block until everything offered before this call was written; False if not running."""
        if self._thread is None or not self._thread.is_alive():
            return False
        marker = _Flush()
        self._queue.put(marker)
        self._wake.set()
        return marker.done.wait(timeout)

    def stop(self) -> None:
        """Refuse new items, write everything queued, and end the thread (blocking)."""
        self._closed = True
        if self._thread is not None:
            self._queue.put(_STOP)
            self._wake.set()
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        # The thread wakes every ``interval`` (or when a batch fills, a flush or a stop is
        # asked for), never once per item: a wake per trace would cost the event loop a
        # GIL hand-off on every request.
        batch: list[Any] = []
        flushes: list[_Flush] = []
        next_tick = time.monotonic()
        stopping = False
        try:
            while not stopping:
                self._wake.wait(max(0.0, min(self.interval, next_tick - time.monotonic())))
                self._wake.clear()
                while True:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is _STOP:
                        stopping = True
                    elif isinstance(item, _Flush):
                        flushes.append(item)
                    else:
                        batch.append(item)
                        if len(batch) >= self.batch_size:
                            batch = self._write(batch)
                if batch:
                    batch = self._write(batch)
                self._settle()
                for marker in flushes:
                    marker.done.set()
                flushes.clear()
                if time.monotonic() >= next_tick:
                    self._tick()
                    next_tick = time.monotonic() + self.tick_interval
        finally:
            if batch:
                self._write(batch)
            self._settle()
            for marker in flushes:
                marker.done.set()

    def _write(self, batch: list[Any]) -> list[Any]:
        try:
            self.write(batch)
        except Exception:
            log.exception("%s: writing a batch of %d failed", self.name, len(batch))
        return []

    def _settle(self) -> None:
        if self.settle is None:
            return
        try:
            self.settle()
        except Exception:
            log.exception("%s: finishing the batches written failed", self.name)

    def _tick(self) -> None:
        if self.tick is None:
            return
        try:
            self.tick()
        except Exception:
            log.exception("%s: periodic task failed", self.name)
