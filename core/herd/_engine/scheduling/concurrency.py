"""Adaptive concurrency: how many requests a node serves at once for a model, learned.

An agentless node that YAML does not describe hides its parallelism (Ollama's
``OLLAMA_NUM_PARALLEL``, vLLM's batch, llama.cpp's slots). Latency gives it away: while the
node has a free slot, a new request's time to first token stays near the node's no-load
value and its time per token holds; once it has none, requests wait inside the node and
their first token comes late (or, batching, every token slows down).

:class:`AdaptiveLimit` follows the gradient idea of Envoy's adaptive concurrency filter and
Netflix's concurrency-limits: over a round of samples (as many as the limit),
``gradient = allowed / round_value`` (at most 1, at least 0.5: the wait before the first
token against half the request's own service time, or, without service times, against
``tolerance * no_load + slack``), and
the limit becomes ``limit * gradient`` when latency degraded, or grows when it held and the
limit was reached during the round (growth needs demand: an idle node's limit is never
tested). Until latency first degrades, growth doubles the limit per round (the way TCP's
slow start finds a link's size); afterwards it adds one per two clean rounds. The no-load values are
the lowest seen, drifting slowly up so a minimum from an idle hour does not condemn a
busy one. A round's first-token value is its upper quartile, not its mean: with a few
requests too many, only those few wait inside the node, and a mean would hide them.

Pure: no clock, no I/O. The queues feed it samples (:mod:`.queues`).
"""

from __future__ import annotations

__all__ = ["AdaptiveLimit"]

_PROBE_EVERY = 2  # after a cut, clean rounds per extra slot probed


class AdaptiveLimit:
    """The learned concurrency of one node for one model.

    Args:
        start: The limit before any sample (``routing.default_num_parallel``).
        min_limit, max_limit: Bounds of the limit.
        tolerance: How many times its no-load value a first token's wait may grow before it
            counts as degraded (queueing inside the node adds a whole service time).
        token_tolerance: The same for the time per token, beyond the growth in requests at
            once since its no-load value (batching slows every token; that is a loss only
            when tokens slow more than concurrency grew).
        slack_s: Seconds of first-token jitter never counted as degradation (a busy router
            host adds tens of milliseconds to samples).
        service_share: Nor is a wait shorter than this share of the request's own service
            time (first token to last; upper quartile of the round): a request that found
            every slot taken waits for one to finish, about a service time; a starved
            host's delays are far shorter than the slowed service they come with.
        drift: Per round, the no-load values rise by this fraction towards the round's
            means, so an old minimum fades.

    Example:
        >>> limit = AdaptiveLimit(4)
        >>> for _ in range(8):
        ...     limit.sample(ttft_s=0.05, per_token_s=0.01, in_flight=limit.limit)
        >>> limit.limit > 4
        True
    """

    __slots__ = (
        "_ceiling",
        "_clean_rounds",
        "_limit",
        "_round",
        "_round_in_flight",
        "_round_ratios",
        "_round_saturated",
        "_round_token",
        "_round_tokens",
        "_round_ttfts",
        "degraded",
        "drift",
        "max_limit",
        "min_limit",
        "no_load_in_flight",
        "no_load_token",
        "no_load_ttft",
        "rounds",
        "service_share",
        "slack_s",
        "slow_start",
        "token_tolerance",
        "tolerance",
    )

    def __init__(
        self,
        start: int,
        *,
        min_limit: int = 1,
        max_limit: int = 256,
        tolerance: float = 2.0,
        token_tolerance: float = 4.0,
        slack_s: float = 0.15,
        service_share: float = 0.5,
        drift: float = 0.01,
    ) -> None:
        self.min_limit = min_limit
        self.max_limit = max_limit
        self.tolerance = tolerance
        self.token_tolerance = token_tolerance
        self.slack_s = slack_s
        self.service_share = service_share
        self.drift = drift
        self._limit = min(max(start, min_limit), max_limit)
        self.no_load_ttft = 0.0
        self.no_load_token = 0.0
        self.rounds = 0
        self.slow_start = True
        self.degraded = False  # the last round's verdict
        self.no_load_in_flight = 1
        self._round_ttfts: list[float]
        self._round_ratios: list[float]
        self._new_round()
        self._clean_rounds = 0
        self._ceiling = max_limit  # lowered for good by a refusal (see refused)

    @property
    def limit(self) -> int:
        """Requests the node may have at once for the model now."""
        return self._limit

    def sample(
        self,
        ttft_s: float,
        per_token_s: float | None,
        in_flight: int,
        slack_s: float = -1.0,
        service_s: float = 0.0,
    ) -> None:
        """Learn from one finished request.

        Args:
            ttft_s: Seconds it waited for its first token (no model load in them): the
                node's own account when it gives one, else as the router saw it.
            per_token_s: Mean seconds per generated token after the first, when known.
            in_flight: Requests the node had for the model when this one was sent,
                itself included.
            slack_s: This sample's jitter allowance (default ``slack_s``): less when the
                node measured the wait itself, free of the router's own lag.
            service_s: Seconds it took from its first token to its last.
        """
        if self.degraded and in_flight > self._limit:
            return  # sent before the last cut: it tells of the old limit, already judged
        if slack_s >= 0.0:
            self.slack_s = slack_s
        if not self.rounds and not self._round:
            self.no_load_ttft = ttft_s
        self.no_load_ttft = min(self.no_load_ttft, ttft_s)
        self._round += 1
        self._round_ttfts.append(ttft_s)
        if service_s > 0:
            self._round_ratios.append(ttft_s / service_s)
        if per_token_s is not None and per_token_s > 0:
            self._round_tokens += 1
            self._round_token += per_token_s
            if not self.no_load_token or per_token_s < self.no_load_token:
                self.no_load_token = per_token_s
                self.no_load_in_flight = max(1, in_flight)
        self._round_in_flight += in_flight
        self._round_saturated = self._round_saturated or in_flight >= self._limit
        if self._round >= self._limit:
            self._end_round()

    def refused(self, in_flight: int) -> None:
        """The node turned a request away as full (its own "busy", or a stream it cut for
        another) with ``in_flight`` requests for the model, this one included: it holds
        fewer than that. A drop is the clearest sign of overload there is (as in
        concurrency-limits' AIMD), so the limit comes down at once; and it never grows back
        to ``in_flight``: probing a node that cuts a running stream for a new one would
        break a client's answer each time."""
        self._ceiling = max(min(self._ceiling, in_flight - 1), self.min_limit)
        self._limit = min(max(min(self._limit, in_flight - 1), self.min_limit), self.max_limit)
        self.slow_start = False
        self.degraded = True
        self._clean_rounds = 0
        self._new_round()

    def _new_round(self) -> None:
        """Forget the round's samples (ended, or judged already by a refusal)."""
        self._round = 0
        self._round_ttfts = []
        self._round_ratios = []
        self._round_in_flight = 0
        self._round_token = 0.0
        self._round_tokens = 0
        self._round_saturated = False

    def _end_round(self) -> None:
        ttfts = sorted(self._round_ttfts)
        upper_ttft = ttfts[(3 * len(ttfts)) // 4]
        ratios = sorted(self._round_ratios)
        if len(ratios) * 2 > len(ttfts):
            # A request that found every slot taken waits for one to finish: a good part
            # of a service time, whatever the no-load wait (a node never idle shows none).
            # A starved host delays everything a little, its own service too: no sign.
            upper_ratio = ratios[(3 * len(ratios)) // 4]
            waited = upper_ttft > self.slack_s
            gradient = _gradient(self.service_share, upper_ratio) if waited else 1.0
        else:
            gradient = _gradient(self.tolerance * self.no_load_ttft + self.slack_s, upper_ttft)
        mean_token = self._round_token / self._round_tokens if self._round_tokens else 0.0
        if mean_token:
            # slower tokens with more at once can still be more tokens per second: they
            # count only when they slowed more than the concurrency grew
            grown = max(1.0, self._round_in_flight / self._round / self.no_load_in_flight)
            allowed = self.token_tolerance * self.no_load_token * grown
            gradient = min(gradient, _gradient(allowed, mean_token))
        self.degraded = gradient < 1.0
        limit = self._limit
        if self.degraded:
            self.slow_start = False
            self._clean_rounds = 0
            limit = min(limit - 1, int(limit * max(gradient, 0.5)))
        elif self._round_saturated:
            self._clean_rounds += 1
            if self.slow_start:
                limit *= 2
            elif self._clean_rounds % _PROBE_EVERY == 0:  # probe again, not every round
                limit += 1
        self._limit = min(max(limit, self.min_limit), self.max_limit, self._ceiling)
        # the no-load values fade towards what the node shows now
        self.no_load_ttft += self.drift * (ttfts[len(ttfts) // 2] - self.no_load_ttft)
        if mean_token and self.no_load_token:
            self.no_load_token += self.drift * (mean_token - self.no_load_token)
        self.rounds += 1
        self._new_round()


def _gradient(allowed: float, seen: float) -> float:
    """``allowed / seen``, at most 1: how far a latency is past what is allowed."""
    return 1.0 if seen <= 0.0 else min(1.0, allowed / seen)
