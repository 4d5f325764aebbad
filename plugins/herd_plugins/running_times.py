"""Running estimates of a node's times for a model, learned from traces (the wait-time signal's)."""

from __future__ import annotations

__all__ = ["NodeModelTimes", "RunningQuantile", "learn"]


class RunningQuantile:
    """An exponentially weighted estimate of one quantile of a stream of durations.

    Each sample moves the estimate up by ``rate * q * scale`` when above it and down by
    ``rate * (1 - q) * scale`` when not, ``scale`` being the running mean: it settles where
    a fraction ``q`` of recent samples lie below it, and old samples fade geometrically.
    """

    __slots__ = ("mean", "value")

    def __init__(self, first: float) -> None:
        self.mean = first
        self.value = first

    def add(self, sample: float, q: float, rate: float) -> None:
        # (conditional expressions, not max(): a call to max parses its arguments as
        # keywords might come, which costs more than the arithmetic; this runs 3 times
        # per request)
        mean = self.mean = self.mean + rate * (sample - self.mean)
        step = rate * (mean if mean > 1e-3 else 1e-3)
        value = self.value
        value += step * (q - (1.0 if sample <= value else 0.0))
        self.value = value if value > 0.0 else 0.0


class NodeModelTimes:
    """What one node has shown for one model: service, first-token and load times."""

    __slots__ = ("first_token", "load", "service")

    def __init__(self) -> None:
        self.service: RunningQuantile | None = None
        self.first_token: RunningQuantile | None = None
        self.load: RunningQuantile | None = None


def learn(running: RunningQuantile | None, sample: float, q: float, rate: float) -> RunningQuantile:
    """``running`` with ``sample`` added (a new estimate for the first sample)."""
    if running is None:
        return RunningQuantile(sample)
    running.add(sample, q, rate)
    return running
