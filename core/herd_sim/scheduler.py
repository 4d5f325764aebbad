"""Loaded models ("runners"): VRAM accounting, LRU eviction, keep-alive, slots and the queue.

Mirrors Ollama's scheduler where a router can see it: a model loads on first use (with a
delay), a different ``num_ctx`` reloads it once it is idle, a model that does not fit evicts
the least recently used idle model, and one bigger than all VRAM loads partially when nothing
else is loaded. Each runner serves ``num_parallel`` requests at once; the rest wait, and more
than ``max_queue`` waiting requests get 503.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from herd_sim.catalog import DiskModel
from herd_sim.control import SimStats
from herd_sim.models import EmulatedModel, SimConfig, loaded_size_bytes
from herd_sim.wire import SimError

QUEUE_FULL = "server busy, please try again.  maximum pending requests exceeded"
FOREVER_SECONDS = 292 * 365 * 24 * 3600.0  # Go's longest time.Duration, as Ollama shows it


@dataclass(eq=False)
class Runner:
    """One loaded model."""

    disk: DiskModel
    num_ctx: int
    size: int
    size_vram: int
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    active: int = 0
    last_used: float = field(default_factory=time.monotonic)
    keep_alive: float | None = 300.0
    expires_at: float | None = None
    expiry: asyncio.TimerHandle | None = None
    load_task: asyncio.Task[None] | None = None

    def expires_at_wall(self, now: float) -> float:
        """Epoch seconds when it unloads if left idle (busy: now + keep-alive)."""
        idle = self.active == 0 and self.ready.is_set()
        if idle and self.expires_at is not None:
            return self.expires_at
        if self.keep_alive is None:
            return now + FOREVER_SECONDS
        return now + self.keep_alive


@dataclass(frozen=True)
class Lease:
    """A slot on a ready runner, held for one request."""

    runner: Runner
    load_seconds: float


def effective_num_ctx(config: SimConfig, model: EmulatedModel, requested: int | None) -> int:
    """The context a request loads: its ``num_ctx`` or the default, capped at the model's."""
    wanted = requested if requested is not None and requested > 0 else config.default_num_ctx
    return min(wanted, model.context_length)


class Scheduler:
    """Places requests on runners; one instance per emulator, used on its event loop only."""

    def __init__(self, config: SimConfig, stats: SimStats) -> None:
        self._config = config
        self._stats = stats
        self._runners: dict[str, Runner] = {}
        self._pending = 0
        self._changed = asyncio.Event()

    @property
    def pending(self) -> int:
        """Requests waiting for a slot or for room to load."""
        return self._pending

    def runners(self) -> list[Runner]:
        """Loaded (or loading) models, the ``/api/ps`` order: latest expiry first."""
        now = time.time()
        return sorted(self._runners.values(), key=lambda r: r.expires_at_wall(now), reverse=True)

    @asynccontextmanager
    async def lease(
        self, disk: DiskModel, num_ctx: int, keep_alive: float | None
    ) -> AsyncIterator[Lease]:
        """Wait for a slot on ``disk`` loaded at ``num_ctx``; release it with ``keep_alive``.

        Raises:
            SimError: 503 when ``max_queue`` requests are already waiting.
        """
        if self._pending >= self._config.max_queue:
            raise SimError(503, QUEUE_FULL)
        started = time.perf_counter()
        self._pending += 1
        try:
            runner = await self._claim(disk, num_ctx)
        finally:
            self._pending -= 1
        runner.keep_alive = keep_alive  # like Ollama, the latest scheduled request decides
        try:
            await runner.ready.wait()
            yield Lease(runner, time.perf_counter() - started)
        finally:
            self._release(runner)

    def request_unload(self, disk: DiskModel) -> None:
        """Unload now if idle, else as soon as its last request ends (``keep_alive: 0``)."""
        runner = self._runners.get(disk.key)
        if runner is None:
            return
        runner.keep_alive = 0.0
        if runner.active == 0 and runner.ready.is_set():
            self._unload(runner)
            self._notify()

    def unload_all(self) -> None:
        """Unload every idle model; busy ones unload when they finish."""
        for runner in list(self._runners.values()):
            self.request_unload(runner.disk)

    def close(self) -> None:
        """Cancel timers and loads (the server is stopping)."""
        for runner in self._runners.values():
            if runner.expiry is not None:
                runner.expiry.cancel()
            if runner.load_task is not None:
                runner.load_task.cancel()
        self._runners.clear()

    async def _claim(self, disk: DiskModel, num_ctx: int) -> Runner:
        while True:
            runner = self._try_claim(disk, num_ctx)
            if runner is not None:
                return runner
            changed = self._changed
            await changed.wait()

    def _try_claim(self, disk: DiskModel, num_ctx: int) -> Runner | None:
        runner = self._runners.get(disk.key)
        if runner is not None:
            if runner.num_ctx == num_ctx:
                if runner.active >= self._config.num_parallel:
                    return None
                self._take_slot(runner)
                return runner
            if runner.active > 0 or not runner.ready.is_set():
                return None
            self._unload(runner)  # reload at the new context length
            self._stats.reloads += 1
        needed = loaded_size_bytes(disk.model, num_ctx)
        while self._free_vram() < needed:
            victim = self._least_recently_used_idle()
            if victim is None:
                break
            self._unload(victim)
            self._stats.evictions += 1
        free = self._free_vram()
        if free >= needed:
            size_vram = needed
        elif not self._runners:
            size_vram = max(0, free)  # partial offload: the rest runs from system RAM
        else:
            return None
        runner = Runner(disk=disk, num_ctx=num_ctx, size=needed, size_vram=size_vram)
        self._runners[disk.key] = runner
        self._stats.loads += 1
        self._take_slot(runner)
        runner.load_task = asyncio.get_running_loop().create_task(self._load(runner))
        return runner

    async def _load(self, runner: Runner) -> None:
        delay = self._config.load_seconds_per_gb * runner.disk.model.size / 1e9
        if delay > 0:
            await asyncio.sleep(delay)
        runner.ready.set()
        if runner.active == 0:
            self._schedule_expiry(runner)
        self._notify()

    def _take_slot(self, runner: Runner) -> None:
        runner.active += 1
        if runner.expiry is not None:
            runner.expiry.cancel()
            runner.expiry = None
        runner.expires_at = None
        stats = self._stats
        stats.active += 1
        stats.max_concurrent = max(stats.max_concurrent, stats.active)
        name = runner.disk.display
        stats.max_concurrent_by_model[name] = max(
            stats.max_concurrent_by_model.get(name, 0), runner.active
        )

    def _release(self, runner: Runner) -> None:
        runner.active -= 1
        self._stats.active -= 1
        runner.last_used = time.monotonic()
        if runner.active == 0 and runner.ready.is_set() and self._is_loaded(runner):
            self._schedule_expiry(runner)
        self._notify()

    def _schedule_expiry(self, runner: Runner) -> None:
        if runner.expiry is not None:
            runner.expiry.cancel()
            runner.expiry = None
        if runner.keep_alive is None:
            runner.expires_at = None
        elif runner.keep_alive <= 0:
            self._unload(runner)
        else:
            runner.expires_at = time.time() + runner.keep_alive
            loop = asyncio.get_running_loop()
            runner.expiry = loop.call_later(runner.keep_alive, self._expire, runner)

    def _expire(self, runner: Runner) -> None:
        runner.expiry = None
        if runner.active == 0 and self._is_loaded(runner):
            self._unload(runner)
            self._notify()

    def _unload(self, runner: Runner) -> None:
        if runner.expiry is not None:
            runner.expiry.cancel()
            runner.expiry = None
        if self._is_loaded(runner):
            del self._runners[runner.disk.key]
            self._stats.unloads += 1

    def _is_loaded(self, runner: Runner) -> bool:
        return self._runners.get(runner.disk.key) is runner

    def _free_vram(self) -> int:
        used = sum(runner.size_vram for runner in self._runners.values())
        return self._config.vram_bytes - used

    def _least_recently_used_idle(self) -> Runner | None:
        idle = [r for r in self._runners.values() if r.active == 0 and r.ready.is_set()]
        return min(idle, key=lambda runner: runner.last_used, default=None)

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()
