"""Wait-time signal: the estimated wait for a first token, learned from the traces."""

from __future__ import annotations

import time
from collections.abc import Sequence
from itertools import compress
from operator import is_not, mul

from herd import InferenceRequest, NodeView, RequestTrace, Signal, hookimpl, normalize_model_name

from herd_plugins.running_times import NodeModelTimes, RunningQuantile, learn
from herd_plugins.wait_time_rows import AskedRows
from herd_plugins.wait_time_rows import bests_after as _bests_after
from herd_plugins.wait_time_rows import bests_of as _bests_of

GB = 1e9


class WaitTimeSignal(Signal):
    """Scores ``half_score_s / (half_score_s + wait)``: 1.0 for no wait, 0.5 for a wait of
    ``half_score_s``. The wait is the node's time to a first token for the model, plus the
    load time when the model is not in memory, plus a share of one service time per request
    ahead of this one in the node's queue. Every duration is a running ``quantile`` per node
    and model, learned from finished requests; priors stand in until there are some. A
    model that left memory less than ``warm_window_s`` ago loads ``warm_load_factor`` times
    as long (its file is still in the disk cache); one being loaded already, half as long.
    A node's load speed (seconds per GB) is learned from every load it did, so a model's
    first load there is estimated from the others.

    With ``prefer_loaded`` (default), a node that would load the model scores 0 while a
    node that has it loaded (or loading) is expected to give the first token at least
    ``prefer_margin_s`` sooner than the best cold start: a loaded copy's queue beats a load
    elsewhere when its wait is shorter, and every load avoided is an eviction avoided (a
    load quicker than the margin, a small embedding model's, is no reason to crowd one
    node). (A score, not a
    rejection: a retry after the loaded copy failed still finds the others.)
    """

    name = "wait-time"
    reads = frozenset(  # what node_values reads (_estimates)
        {"name", "status", "loaded", "loading", "models", "unloaded_at"}
        | {"in_flight_by_model", "queued_by_model"}
        | {"num_parallel", "learned_parallel", "assumed_parallel"}
    )
    # (what the clock or the times learned on other nodes move is None: asked each time)
    request_reads = frozenset({"model_key"})

    class Config(Signal.Config, forbid_unknown_fields=True):
        weight: float = 2.0
        half_score_s: float = 10.0
        quantile: float = 0.75
        learning_rate: float = 0.1
        prior_service_s: float = 8.0
        prior_first_token_s: float = 0.5
        prior_load_s_per_gb: float = 1.0
        warm_load_factor: float = 0.3
        warm_window_s: float = 900.0
        prefer_loaded: bool = True
        prefer_margin_s: float = 1.0

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self._times: dict[str, dict[str, NodeModelTimes]] = {}  # model -> node -> times
        self._model_service: dict[str, RunningQuantile] = {}
        self._load_rate: dict[str, RunningQuantile] = {}  # node -> load seconds per GB
        self._sizes: dict[str, int] = {}  # model -> bytes on disk, as last seen
        self._prepared: tuple[str, bool, Sequence[NodeView], list[float], list[bool]] | None = None
        # the last settle's cached values (None: some were not), model and scores
        self._settled: tuple[list | None, str, list[float]] = (None, "", [])
        self._columns: tuple[list, str, tuple[list, ...]] = ([], "", ())  # see _unzip
        # the last settle's columns, shortest waits (hot, cold), prefer, and scores
        self._judged: tuple = _UNJUDGED
        self._asked = AskedRows()  # the nodes node_values computed since the last settle

    def prepare(self, request: InferenceRequest, nodes: Sequence[NodeView]) -> None:
        key = request.model_key
        hot: list[bool] = []
        waits, best_hot, best_cold = self._estimates(key, nodes, hot)
        prefer = (
            self.config.prefer_loaded
            and best_hot is not None
            and best_cold is not None
            and best_hot + self.config.prefer_margin_s <= best_cold
        )
        self._prepared = (key, prefer, nodes, waits, hot)

    def estimate(self, request: InferenceRequest, node: NodeView) -> float:
        """Seconds until this request's first token on ``node``."""
        return self._estimates(request.model_key, [node], [])[0][0]

    def _estimates(
        self,
        key: str,
        nodes: Sequence[NodeView],
        hot: list[bool],
        moving: list[bool] | None = None,
    ) -> tuple[list[float], float | None, float | None]:
        """Seconds until the first token on each node, the shortest on a node online with
        the model loaded (or loading), and the shortest on one that would load it (one
        loop: it runs per request). ``hot`` gets, per node, whether the model is loaded or
        loading there; ``moving`` (if given), whether the estimate may change without the
        node's view or its own learned times changing: by the clock (a warm model) or by
        the model's service time learned on other nodes."""
        config = self.config
        by_node = self._times.get(key) or {}
        prior_first, prior_service = config.prior_first_token_s, config.prior_service_s
        model_service = self._model_service.get(key)
        warm_since = time.time() - config.warm_window_s
        load_rates = self._load_rate
        prior_per_gb, warm_factor = config.prior_load_s_per_gb, config.warm_load_factor
        size_seen = 0
        out = []
        best_hot = best_cold = None
        for node in nodes:  # empty dicts are skipped before .get: this runs per node
            times = by_node.get(node.name) if by_node else None
            first = times.first_token if times is not None else None
            wait = first.value if first is not None else prior_first
            learned = node.learned_parallel
            slots = node.num_parallel or (learned and learned.get(key)) or node.assumed_parallel
            queued = node.queued_by_model
            ahead = (
                node.in_flight_by_model.get(key, 0)
                + (queued.get(key, 0) if queued else 0)
                - slots
                + 1
            )
            shared = False  # read the model's service time learned elsewhere, or the clock
            if ahead > 0:
                service = times.service if times is not None else None
                if service is None:
                    service, shared = model_service, True
                typical = service.value if service is not None else prior_service
                wait += ahead * typical / slots
            if key in node.loaded:
                hot.append(True)
                if node.status == "online" and (best_hot is None or wait < best_hot):
                    best_hot = wait
            else:
                load = times.load if times is not None else None
                entry = node.models.get(key)
                if entry is not None and entry.size:
                    size_seen = entry.size
                if load is not None:
                    load_s = load.value
                else:
                    rate = load_rates.get(node.name) if load_rates else None
                    per_gb = rate.value if rate is not None else prior_per_gb
                    load_s = per_gb * (entry.size / GB if entry else 1.0)
                if key in node.loading:
                    wait += load_s * 0.5  # under way already
                    hot.append(True)
                    if node.status == "online" and (best_hot is None or wait < best_hot):
                        best_hot = wait
                else:
                    unloaded = node.unloaded_at
                    if unloaded and key in unloaded:
                        shared = True  # warm now, cold later
                        if unloaded[key] > warm_since:
                            load_s *= warm_factor  # still in the disk cache
                    wait += load_s
                    hot.append(False)
                    if best_cold is None or wait < best_cold:
                        best_cold = wait
            out.append(wait)
            if moving is not None:
                moving.append(shared)
        if size_seen:
            self._sizes[key] = size_seen  # as the last node with it on disk says
        return out, best_hot, best_cold

    def cache_key(self, request: InferenceRequest, nodes: Sequence[NodeView]) -> str:
        return request.model_key  # learned times: observe() invalidates their node

    def node_values(self, request: InferenceRequest, nodes: Sequence[NodeView]) -> list:
        """``(score, wait, hot, hot and online)`` per node; None where it may move (see
        ``_estimates``)."""
        hot: list[bool] = []
        moving: list[bool] = []
        waits = self._estimates(request.model_key, nodes, hot, moving)[0]
        self._asked.add(nodes)
        half = self.config.half_score_s
        if len(waits) == 1:  # the common call: one node changed (no comprehension to set up)
            if moving[0]:
                return [None]
            wait, is_hot = waits[0], hot[0]
            return [(half / (half + wait), wait, is_hot, is_hot and nodes[0].status == "online")]
        return [
            None
            if shifts
            else (half / (half + wait), wait, is_hot, is_hot and node.status == "online")
            for wait, is_hot, shifts, node in zip(waits, hot, moving, nodes, strict=True)
        ]

    def settle(
        self, request: InferenceRequest, nodes: Sequence[NodeView], values: list
    ) -> tuple[list[float], None]:
        """``prepare``'s comparison of loaded and cold copies, over the cached estimates."""
        key = request.model_key
        last = self._settled
        if values is last[0] and key == last[1]:
            self._asked.clear()
            return last[2], None  # the same cached values as last time: the same scores
        steady = values
        changed = self._changed(key, values, nodes)
        # the last columns' values hold no None: one can only be in a changed row
        rows = range(len(values)) if changed is None else changed
        moving = []  # (a loop: most often over one row, cheaper than a comprehension's setup)
        for index in rows:
            if values[index] is None:
                moving.append(index)
        if moving:  # estimated afresh, reading the clock once
            values = list(values)
            now = self._values_now(key, [nodes[index] for index in moving])
            for index, value in zip(moving, now, strict=True):
                values[index] = value
        before = self._columns[2]
        (scores, waits, hot, hot_online), changed = self._unzip(key, values, changed)
        judged = self._judged
        # a few rows changed since the last settle: its shortest waits, updated, when no
        # changed row held one; else looked for again (a NaN makes them positional)
        bests = None
        if changed is not None and judged[0] is before:
            bests = _bests_after(before, judged[1], judged[2], (waits, hot, hot_online), changed)
        incremental = bests is not None
        if bests is None:
            bests = _bests_of(waits, hot, hot_online)
            total = sum(waits)
            trusted = total == total
        else:
            trusted = True
        best_hot, best_cold = bests
        config = self.config
        prefer = (
            config.prefer_loaded
            and best_hot is not None
            and best_cold is not None
            and best_hot + config.prefer_margin_s <= best_cold
        )
        self._prepared = (key, prefer, nodes, waits, hot)
        # a cold node scores 0 (x False) when loaded copies are preferred
        if not prefer:
            out = scores
        elif incremental and judged[3]:
            out = list(judged[4])  # the last scores, the changed rows worked out again
            for index in changed:
                out[index] = scores[index] * hot[index]
        else:
            out = list(map(mul, scores, hot))
        columns = self._columns[2]
        self._judged = (columns, best_hot, best_cold, prefer, out) if trusted else _UNJUDGED
        self._settled = (steady if steady is values else None, key, out)
        return out, None

    def _changed(self, key: str, values: list, nodes: Sequence[NodeView]) -> list[int] | None:
        """The rows where ``values`` are not the last columns' values (None: not the same
        model or node count, every row counts): those of the nodes asked about since,
        when the others are as they were (see AskedRows.changed), else every row's."""
        last, last_key, _ = self._columns
        count = len(values)
        if last_key == key and len(last) == count:
            rows = self._asked.changed(nodes, values, last)
            if rows is not None:
                return rows
            return list(compress(range(count), map(is_not, values, last)))
        self._asked.clear()
        return None

    def _unzip(
        self, key: str, values: list, changed: list[int] | None
    ) -> tuple[tuple[list, ...], list[int] | None]:
        """The values' four columns: the last ones, patched at the ``changed`` rows (see
        ``_changed``; given back second, None when the columns were built afresh)."""
        columns = self._columns[2]
        count = len(values)
        if changed is not None and len(changed) * 4 <= count:
            columns = tuple(map(list, columns))  # copies
            scores, waits, hot, hot_online = columns
            for index in changed:
                scores[index], waits[index], hot[index], hot_online[index] = values[index]
            self._columns = (values, key, columns)
            return columns, changed
        columns = tuple(map(list, zip(*values, strict=True)))
        self._columns = (values, key, columns)
        return columns, None

    def _values_now(self, key: str, nodes: Sequence[NodeView]) -> list:
        hot: list[bool] = []
        waits = self._estimates(key, nodes, hot)[0]
        half = self.config.half_score_s
        return [
            (half / (half + wait), wait, is_hot, is_hot and node.status == "online")
            for wait, is_hot, node in zip(waits, hot, nodes, strict=True)
        ]

    def score(self, request: InferenceRequest, node: NodeView) -> float:
        half, key, prepared = self.config.half_score_s, request.model_key, self._prepared
        prefer = prepared is not None and prepared[0] == key and prepared[1]
        if prefer and key not in node.loaded and key not in node.loading:
            return 0.0  # loaded copies are preferred (see prepare)
        return half / (half + self.estimate(request, node))

    def scores(self, request: InferenceRequest, nodes: Sequence[NodeView]) -> list[float]:
        half = self.config.half_score_s
        key = request.model_key
        prepared = self._prepared  # kept: score() agrees with it until the next prepare
        if prepared is None or prepared[0] != key:
            return [half / (half + wait) for wait in self._estimates(key, nodes, [])[0]]
        _, prefer, prepared_nodes, waits, hot = prepared
        if nodes is not prepared_nodes:  # another signal turned some away: pick theirs
            by_name = {n.name: w for n, w in zip(prepared_nodes, waits, strict=True)}
            waits = [by_name[node.name] for node in nodes]
            hot = [key in node.loaded or key in node.loading for node in nodes]
        if not prefer:
            return [half / (half + wait) for wait in waits]
        return [
            half / (half + wait) if is_hot else 0.0 for wait, is_hot in zip(waits, hot, strict=True)
        ]

    def observe(self, trace: RequestTrace) -> None:
        if trace.status != "completed" or not trace.node or not trace.served_model:
            return
        config = self.config
        q, rate = config.quantile, config.learning_rate
        key = normalize_model_name(trace.served_model)
        self.invalidate(trace.node)  # its times (and load speed) change
        by_node = self._times.setdefault(key, {})
        times = by_node.get(trace.node)
        if times is None:
            times = by_node[trace.node] = NodeModelTimes()
        load_s = trace.load_ms / 1000.0
        service_s = (trace.latency_ms - trace.queue_ms) / 1000.0 - load_s
        first_s = (trace.ttft_ms - trace.queue_ms) / 1000.0 - load_s
        service_s = service_s if service_s > 0.0 else 0.0  # (cheaper than max, per request)
        first_s = first_s if first_s > 0.0 else 0.0
        times.service = learn(times.service, service_s, q, rate)
        times.first_token = learn(times.first_token, first_s, q, rate)
        self._model_service[key] = learn(self._model_service.get(key), service_s, q, rate)
        if load_s >= 0.05:  # a real load, not the runner's bookkeeping
            times.load = learn(times.load, load_s, q, rate)
            size = self._sizes.get(key)
            if size:
                per_gb = load_s / (size / GB)
                self._load_rate[trace.node] = learn(
                    self._load_rate.get(trace.node), per_gb, q, rate
                )


_UNJUDGED = (None, None, None, False, [])


@hookimpl
def herd_register_signals() -> list[type[Signal]]:
    return [WaitTimeSignal]
