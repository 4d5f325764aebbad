"""The state of one emulated Ollama server, shared by its HTTP handlers."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from herd_sim.catalog import Catalog, DiskModel
from herd_sim.control import FaultInjector, SimStats
from herd_sim.models import SimConfig
from herd_sim.scheduler import Scheduler
from herd_sim.wire import SimError, parse_keep_alive


class SimEngine:
    """Disk catalogue, scheduler, counters and armed failures of one emulator.

    Args:
        config: The emulated server.
        catalog: Disk state to keep (a restarted node keeps its pulled/deleted models);
            a fresh catalogue from ``config`` when omitted.
    """

    def __init__(self, config: SimConfig, catalog: Catalog | None = None) -> None:
        self.config = config
        self.catalog = catalog or Catalog(config.models, config.registry)
        self.stats = SimStats()
        self.faults = FaultInjector()
        self.scheduler = Scheduler(config, self.stats)
        try:
            self.default_keep_alive = parse_keep_alive(config.keep_alive, 300.0)
        except SimError as error:
            raise ValueError(f"invalid keep_alive in sim config: {error.message}") from None

    def find_model(self, name: str, not_found: str) -> DiskModel:
        """The disk model called ``name``, or a 404 with the endpoint's ``not_found`` text."""
        entry = self.catalog.find(name)
        if entry is None:
            raise SimError(404, not_found)
        return entry

    def snapshot(self) -> dict[str, Any]:
        """``GET /_sim/stats``: counters plus what is queued, loaded and armed."""
        return {
            "name": self.config.name,
            **self.stats.as_dict(),
            "queued": self.scheduler.pending,
            "loaded": [runner.disk.display for runner in self.scheduler.runners()],
            "armed": self.faults.armed(),
        }

    def reset(self, models: bool = False) -> None:
        """Disarm failures, end silence, zero counters; ``models`` also unloads everything
        and restores the disk to the configured models."""
        self.faults.reset()
        if models:
            self.scheduler.unload_all()
            self.catalog = Catalog(self.config.models, self.config.registry)
        self.stats.reset()

    def close(self) -> None:
        """Stop timers and loads (server shutdown)."""
        self.faults.reset()
        self.scheduler.close()


ENGINE = web.AppKey("herd_sim_engine", SimEngine)
"""Where the aiohttp application keeps its :class:`SimEngine`."""
