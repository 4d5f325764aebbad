"""Engines run model jobs in worker threads, one model at a time, and can be cancelled."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

__all__ = ["BadInput", "Engine", "JobCancelled", "JobStats"]

T = TypeVar("T")


class BadInput(Exception):
    """The request's input cannot be processed (corrupt audio, bad size): a 400."""


class JobCancelled(Exception):
    """The client went away and the engine stopped the job."""


class JobStats:
    """Counters for ``GET /stats``: what ran, what is running, what was cancelled."""

    def __init__(self) -> None:
        self.completed = 0
        self.failed = 0
        self.cancelled = 0
        self.active = 0

    def as_dict(self) -> dict[str, int]:
        return dict(vars(self))


class Engine:
    """One model behind one capability (``transcribe``, ``embed`` or ``image``).

    Subclasses implement :meth:`load` (blocking: read the weights) and their job methods,
    which take a ``cancel`` :class:`threading.Event` and should stop soon after it is set
    (raising :class:`JobCancelled`).
    """

    capability: ClassVar[str]

    def __init__(self, name: str, jobs: int = 1) -> None:
        self.name = name
        self._slots = asyncio.Semaphore(jobs)
        self._load_lock = threading.Lock()
        self._loaded = False
        self.stats = JobStats()

    def load(self) -> None:
        """Load the model (blocking; called once, in a worker thread)."""

    def _ensure_loaded(self) -> None:
        with self._load_lock:
            if not self._loaded:
                self.load()
                self._loaded = True

    async def run(self, job: Callable[..., T], *args: Any) -> T:
        """Run ``job(*args, cancel=event)`` in a worker thread, one per free slot.

        If the awaiting request is cancelled (its client went away), the event is set and
        the slot stays taken until the worker has really stopped.
        """
        cancel = threading.Event()

        def work() -> T:
            self._ensure_loaded()
            if cancel.is_set():
                raise JobCancelled()
            return job(*args, cancel=cancel)

        async with self._slots:
            self.stats.active += 1
            future = asyncio.get_running_loop().run_in_executor(None, work)
            try:
                result = await asyncio.shield(future)
            except asyncio.CancelledError:
                cancel.set()
                self.stats.cancelled += 1
                with contextlib.suppress(Exception):
                    await future
                raise
            except BadInput:
                raise
            except Exception:
                self.stats.failed += 1
                raise
            finally:
                self.stats.active -= 1
            self.stats.completed += 1
            return result
