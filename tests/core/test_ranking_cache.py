"""The ranker's per-node cache: decisions made with it are the decisions made without it,
bit for bit, whatever happens in between (that every change to a view moves its revision
is held in test_node_view_revision.py)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from unittest import mock

import msgspec
from herd import InferenceRequest, LoadedModel, ModelEntry, NodeView, RequestTrace, Signal
from herd._engine.config import load_settings
from herd._engine.gateway import Gateway
from herd._engine.plugins import make_plugin_manager
from herd._engine.scheduling.ranking import Decision, Ranker
from herd.trace import AttemptRecord
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

GIB = 1024**3
MODELS = [("qwen2.5:7b", 4.7), ("llama3.2:3b", 2.0), ("qwen3:14b", 9.3), ("nomic:embed", 0.05)]

# --- signals that do not opt in -------------------------------------------------------


class CountingSignal(Signal):
    name = "counting"

    def __init__(self, config: Signal.Config) -> None:
        super().__init__(config)
        self.calls = 0

    def score(self, request: InferenceRequest, node: NodeView) -> float:
        self.calls += 1
        return 1.0 / (1 + node.in_flight)


class CachedCountingSignal(CountingSignal):
    name = "cached-counting"

    def cache_key(self, request: InferenceRequest, nodes: Sequence[NodeView]) -> str:
        return request.model_key


def _request(model: str = "m", **extra) -> InferenceRequest:
    return InferenceRequest(
        api="ollama",
        endpoint="chat",
        model=model,
        model_key=model,
        body={},
        stream=True,
        **{"kind": "text", **extra},
    )


def _plain_views(count: int) -> list[NodeView]:
    views = []
    for index in range(count):
        view = NodeView(
            name=f"n{index}", url="u", status="online", capabilities=frozenset({"text"})
        )
        view.models["m"] = ModelEntry(name="m", key="m")
        views.append(view)
    return views


def test_a_signal_that_does_not_opt_in_is_asked_every_time() -> None:
    plain = CountingSignal(Signal.Config())
    views = _plain_views(5)
    ranker = Ranker([plain])
    for _ in range(3):
        ranker.rank(_request(), views)
    assert plain.calls == 15


def test_an_opted_in_signal_is_asked_again_only_for_changed_or_invalidated_nodes() -> None:
    cached = CachedCountingSignal(Signal.Config())
    views = _plain_views(30)  # a fleet big enough for the cache to pay with a node changed
    ranker = Ranker([cached])
    ranker.rank(_request(), views)
    ranker.rank(_request(), views)
    assert cached.calls == 30
    views[2].in_flight += 1
    decision = ranker.rank(_request(), views)
    assert cached.calls == 31 and decision.scores["n2"]["cached-counting"] == 0.5
    cached.invalidate("n4")
    ranker.rank(_request(), views)
    assert cached.calls == 32
    cached.invalidate()
    ranker.rank(_request(), views)
    assert cached.calls == 62
    ranker.rank(_request("other"), views)  # another key: no model there, no candidates
    views[0].in_flight_by_model["m"] = 1  # in place, through the view's own dict
    ranker.rank(_request(), views)
    assert cached.calls == 63


def test_a_small_fleet_that_changed_asks_every_signal_afresh() -> None:
    cached = CachedCountingSignal(Signal.Config())
    views = _plain_views(5)
    ranker = Ranker([cached])
    ranker.rank(_request(), views)  # new to the ranker: a change too
    views[1].in_flight += 1
    decision = ranker.rank(_request(), views)  # the bookkeeping would cost more
    assert cached.calls == 10 and decision.scores["n1"]["cached-counting"] == 0.5
    ranker.rank(_request(), views)  # nothing changed: the cache is filled
    ranker.rank(_request(), views)  # and used
    assert cached.calls == 15


# --- the same decisions with and without the cache -------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1.7e9
        self.mono = 5000.0

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.mono += seconds


def _fleet(
    rng: random.Random,
    clock: Clock,
    sizes: tuple[int, ...] = (1, 3, 8, 20),
    loaded: float = 0.3,
    calm: bool = False,
) -> list[NodeView]:
    """Random nodes; ``calm``: all online, with room and context for every model (no
    rejections: the same candidates decision after decision, as in a healthy fleet)."""
    views = []
    for index in range(rng.choice(sizes)):
        view = NodeView(
            name=f"n{index}",
            url=f"http://node{index}",
            status=rng.choice(["online"] * 5 + ["degraded", "offline"]),
            capabilities=frozenset({"text", "embed"}),
            num_parallel=rng.choice((0, 1, 2, 4)),
            online_since=rng.choice((0.0, clock.now - 3600, clock.now - 30)),
        )
        kind = rng.choice(["vram", "ram", "seen", "none"])
        if kind == "vram":
            view.vram_total = rng.choice((8, 12, 24)) * GIB
        elif kind == "ram":
            view.ram_total = rng.choice((16, 32)) * GIB
        elif kind == "seen":
            view.vram_seen = rng.choice((4, 10)) * GIB
        for name, size in MODELS:
            if rng.random() < 0.8:
                view.models[name] = ModelEntry(name=name, key=name, size=int(size * 1e9))
            if rng.random() < loaded:
                _load(view, name, size, rng)
        if calm:
            view.status, view.vram_total, view.ram_total = "online", 96 * GIB, 0
            view.models.update({n: ModelEntry(name=n, key=n, size=int(z * 1e9)) for n, z in MODELS})
            view.loaded.update(
                {n: msgspec.structs.replace(m, context_length=0) for n, m in view.loaded.items()}
            )
        views.append(view)
    return views


def _load(view: NodeView, name: str, size: float, rng: random.Random) -> None:
    resident = int(size * 1.1e9)
    view.loaded[name] = LoadedModel(
        name=name,
        key=name,
        size=resident,
        size_vram=resident if rng.random() < 0.85 else resident // 2,
        context_length=rng.choice((2048, 4096, 8192, 0)),
    )


def _mutate(view: NodeView, rng: random.Random, clock: Clock) -> None:
    name, size = rng.choice(MODELS)
    change = rng.randrange(14)
    if change == 0:
        view.status = rng.choice(["online", "online", "degraded", "offline"])
    elif change == 1:
        view.draining = not view.draining
    elif change == 2:
        view.in_flight_by_model[name] = view.in_flight_by_model.get(name, 0) + 1
        view.in_flight += 1
    elif change == 3:
        by_model = view.in_flight_by_model  # an alias, changed in place
        if by_model:
            key = rng.choice(sorted(by_model))
            view.in_flight = max(0, view.in_flight - by_model.pop(key))
    elif change == 4:
        view.queued_by_model[name] = rng.randint(0, 3)
    elif change == 5:
        view.loading[name] = rng.choice((0, 4096, 16384))
    elif change == 6:
        view.loading.pop(name, None)
    elif change == 7:
        if view.loaded.pop(name, None) is not None:
            view.unloaded_at[name] = clock.now
        else:
            _load(view, name, size, rng)
            view.unloaded_at.pop(name, None)
    elif change == 8:
        view.learned_parallel[name] = rng.randint(1, 3)
    elif change == 9:
        view.num_parallel = rng.choice((0, 1, 2, 4))
    elif change == 10:
        view.vram_used = rng.choice((0, 2 * GIB, 6 * GIB))
        view.ram_available = rng.choice((0, 4 * GIB))
    elif change == 11:
        view.online_since = clock.now  # came back
    elif change == 12:
        if name in view.models:
            del view.models[name]
        else:
            view.models[name] = ModelEntry(name=name, key=name, size=int(size * 1e9))
    else:
        view.capabilities = rng.choice((frozenset({"text", "embed"}), frozenset({"embed"})))


def _trace(rng: random.Random, views: list[NodeView], index: int) -> RequestTrace:
    model = rng.choice(MODELS)[0]
    node = rng.choice(views).name
    failed = rng.random() < 0.2
    return RequestTrace(
        request_id=str(index),
        api="ollama",
        endpoint="chat",
        kind="text",
        model=model,
        served_model=model,
        node=node,
        ttft_ms=rng.uniform(80, 4000),
        latency_ms=rng.uniform(2000, 9000),
        load_ms=rng.choice((0.0, 0.0, 3000.0)),
        session=f"chat:{rng.randint(0, 5)}",
        status="failed" if failed else "completed",
        http_status=200,
        attempts=[AttemptRecord(node=node, started_at=0, ended_at=1, error="x" if failed else "")],
    )


def _ask(rng: random.Random) -> InferenceRequest:
    model = rng.choice(MODELS)[0]
    return _request(
        model,
        kind=rng.choice(["text", "text", "embed"]),
        prompt_tokens=rng.choice((100, 900, 6000)),
        session=f"chat:{rng.randint(0, 5)}",
        follow_up=rng.random() < 0.7,
        num_ctx=rng.choice((None, 2048, 8192)),
        num_predict=rng.choice((None, 100)),
    )


def _shown(decision: Decision) -> tuple:
    return (
        [view.name for view in decision.ranked],
        {node: repr(total) for node, total in decision.totals.items()},
        {n: {s: repr(x) for s, x in row.items()} for n, row in decision.scores.items()},
        list(decision.rejections.items()),
    )


def _gateway(config: dict) -> Gateway:
    gateway = Gateway(load_settings(None, env={}), make_plugin_manager(None, env={}))
    for signal in gateway.signals:
        for field, value in config.get(signal.name, {}).items():
            setattr(signal.config, field, value)
    return gateway


CONFIGS = [{}, {"role-affinity": {"mode": "best-fit"}}, {"wait-time": {"prefer_loaded": False}}]


def _change_a_few(views: list[NodeView], model: str, rng: random.Random, clock: Clock) -> None:
    """One to five nodes change, most often a request starting or finishing there, often
    on a node with the model loaded (where the shortest wait is), sometimes its status."""
    hot = [view for view in views if model in view.loaded]
    for _ in range(rng.choice((1, 1, 1, 2, 5))):
        view = rng.choice(hot if hot and rng.random() < 0.5 else views)
        change = rng.random()
        if change < 0.6:
            _busier(view, rng, model)
        elif change < 0.75:
            view.status = "degraded" if view.status == "online" else "online"
        else:
            _mutate(view, rng, clock)


def _busier(view: NodeView, rng: random.Random, model: str) -> None:
    """A request starts or finishes there: what changes most often under load."""
    name = model if rng.random() < 0.7 else rng.choice(MODELS)[0]
    busy = view.in_flight_by_model.get(name, 0)
    if busy and rng.random() < 0.5:
        view.in_flight_by_model[name] = busy - 1
        view.in_flight = max(0, view.in_flight - 1)
    else:
        view.in_flight_by_model[name] = busy + 1
        view.in_flight += 1


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32 - 1))
def test_decisions_are_the_same_with_and_without_the_cache(seed: int) -> None:
    _cached_against_plain(seed, 60)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32 - 1))
def test_decisions_are_the_same_with_and_without_the_cache_when_few_nodes_change(
    seed: int,
) -> None:
    """Fleets big enough for the cache to run with a few nodes changed between decisions:
    its incremental paths (one row patched, settled, re-weighed and moved in the order)."""
    _cached_against_plain(seed, 80, few=True)


def _cached_against_plain(seed: int, decisions: int, few: bool = False) -> None:
    """Two gateways with the same config, one ranker with the cache and one without, over
    the same fleet: a random one, or (``few``) one of 30-50 where few nodes change."""
    rng = random.Random(seed)
    clock = Clock()
    with (
        mock.patch("time.time", lambda: clock.now),
        mock.patch("time.monotonic", lambda: clock.mono),
    ):
        config = CONFIGS[seed % len(CONFIGS)]
        cached_gateway, plain_gateway = _gateway(config), _gateway(config)
        cached = Ranker(cached_gateway.signals)
        plain = Ranker(plain_gateway.signals, cache=False)
        if few:
            loaded = rng.choice((0.03, 0.1, 0.3))
            views = _fleet(rng, clock, sizes=(30, 50), loaded=loaded, calm=rng.random() < 0.5)
        else:
            views = _fleet(rng, clock)
        _compare(
            rng, clock, cached_gateway, plain_gateway, cached, plain, views, decisions, few=few
        )


def _compare(
    rng: random.Random,
    clock: Clock,
    cached_gateway: Gateway,
    plain_gateway: Gateway,
    cached: Ranker,
    plain: Ranker,
    views: list[NodeView],
    steps: int,
    few: bool = False,
) -> None:
    asked = _ask(rng)
    for step in range(steps):
        action = rng.random()
        if action < 0.45:
            # often the same request again, as a queue re-ranks (more often with few changes:
            # the incremental paths work from the last decision for the same model)
            if rng.random() < (0.3 if few else 0.7):
                asked = _ask(rng)
            expected = _shown(plain.rank(asked, views, asked.kind))
            assert _shown(cached.rank(asked, views, asked.kind)) == expected, step
        elif action < 0.75:
            if few:
                _change_a_few(views, asked.model_key, rng, clock)
            else:
                for view in rng.sample(views, rng.randint(1, len(views))):
                    _mutate(view, rng, clock)
        elif action < 0.9:
            trace = _trace(rng, views, step)
            cached_gateway.finish(trace)
            plain_gateway.finish(trace)
        else:
            clock.advance(rng.choice((0.5, 30.0, 200.0, 1000.0)))
