"""Counters and failure injection of the emulator (driven through ``/_sim/*``)."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import asdict, dataclass, field
from typing import Any, Generic, TypeVar

import msgspec

SpecT = TypeVar("SpecT")
DEFAULT_FAILURE = "llama runner process has terminated: exit status 2"


class FailSpec(msgspec.Struct, forbid_unknown_fields=True):
    """``POST /_sim/fail``: the next ``count`` inference requests answer ``status``/``error``."""

    count: int = 1
    status: int = 500
    error: str = DEFAULT_FAILURE

    def __post_init__(self) -> None:
        if self.count < 0 or not 100 <= self.status <= 599:
            raise ValueError("count must be >= 0 and status an HTTP status")


class HangSpec(msgspec.Struct, forbid_unknown_fields=True):
    """``POST /_sim/hang``: the next ``count`` inference requests wait ``seconds`` first."""

    count: int = 1
    seconds: float = 30.0

    def __post_init__(self) -> None:
        if self.count < 0 or self.seconds < 0:
            raise ValueError("count and seconds must be >= 0")


class DieSpec(msgspec.Struct, forbid_unknown_fields=True):
    """``POST /_sim/die``: the next ``count`` generations break after ``after_chunks`` chunks.

    Without ``error`` the TCP connection is aborted; with it, the stream ends with the in-band
    line ``{"error": error}`` (HTTP 200, no ``done:true``) as Ollama does for a runner crash.
    """

    count: int = 1
    after_chunks: int = 0
    error: str | None = None

    def __post_init__(self) -> None:
        if self.count < 0 or self.after_chunks < 0:
            raise ValueError("count and after_chunks must be >= 0")


class SilentSpec(msgspec.Struct, forbid_unknown_fields=True):
    """``POST /_sim/silent``: every request stalls ``seconds`` (0 ends the silence)."""

    seconds: float = 3600.0

    def __post_init__(self) -> None:
        if self.seconds < 0:
            raise ValueError("seconds must be >= 0")


class ResetSpec(msgspec.Struct, forbid_unknown_fields=True):
    """``POST /_sim/reset``: clear injections and counters; ``models`` also restores state."""

    models: bool = False


@dataclass
class SimStats:
    """Counters served by ``GET /_sim/stats``."""

    requests: dict[str, int] = field(default_factory=dict)
    active: int = 0
    completed: int = 0
    cancelled: int = 0
    failed: int = 0
    hung: int = 0
    died: int = 0
    loads: int = 0
    unloads: int = 0
    evictions: int = 0
    reloads: int = 0  # unloads to load the same model at another num_ctx
    max_concurrent: int = 0
    max_concurrent_by_model: dict[str, int] = field(default_factory=dict)

    def count_request(self, endpoint: str) -> None:
        self.requests[endpoint] = self.requests.get(endpoint, 0) + 1

    def reset(self) -> None:
        """Zero the counters; ``active`` keeps counting the generations still running."""
        fresh = SimStats(active=self.active, max_concurrent=self.active)
        self.__dict__.update(fresh.__dict__)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Pending(Generic[SpecT]):
    remaining: int
    spec: SpecT


class FaultInjector:
    """Holds the armed failures; each ``take_*`` consumes one use."""

    def __init__(self) -> None:
        self._fail: _Pending[FailSpec] | None = None
        self._hang: _Pending[HangSpec] | None = None
        self._die: _Pending[DieSpec] | None = None
        self._silence_seconds = 0.0
        self._silence_lifted = asyncio.Event()

    def arm_fail(self, spec: FailSpec) -> None:
        self._fail = _Pending(spec.count, spec) if spec.count else None

    def arm_hang(self, spec: HangSpec) -> None:
        self._hang = _Pending(spec.count, spec) if spec.count else None

    def arm_die(self, spec: DieSpec) -> None:
        self._die = _Pending(spec.count, spec) if spec.count else None

    def set_silence(self, seconds: float) -> None:
        """Stall every request for ``seconds``; 0 ends the silence and releases the stalled."""
        self._silence_lifted.set()
        self._silence_lifted = asyncio.Event()
        self._silence_seconds = seconds

    def reset(self) -> None:
        self._fail = self._hang = self._die = None
        self.set_silence(0.0)

    def take_fail(self) -> FailSpec | None:
        spec, self._fail = _consume(self._fail)
        return spec

    def take_hang(self) -> HangSpec | None:
        spec, self._hang = _consume(self._hang)
        return spec

    def take_die(self) -> DieSpec | None:
        spec, self._die = _consume(self._die)
        return spec

    async def wait_if_silent(self) -> None:
        """Stall while a silence is on (until it ends or its seconds run out)."""
        if self._silence_seconds <= 0:
            return
        lifted = self._silence_lifted
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(lifted.wait(), self._silence_seconds)

    def armed(self) -> dict[str, Any]:
        """What is still armed, for ``/_sim/stats``."""
        return {
            "fail": self._fail.remaining if self._fail else 0,
            "hang": self._hang.remaining if self._hang else 0,
            "die": self._die.remaining if self._die else 0,
            "silent_seconds": self._silence_seconds,
        }


def _consume(
    pending: _Pending[SpecT] | None,
) -> tuple[SpecT | None, _Pending[SpecT] | None]:
    if pending is None:
        return None, None
    pending.remaining -= 1
    return pending.spec, (pending if pending.remaining > 0 else None)
