"""Contract suites: what every Backend, Signal, TraceSink and FallbackPolicy must do.

A plugin author calls the suite for their class from a test; each check fails with an
``AssertionError`` that says which promise the class broke. herd runs the same suites
against every built-in plugin.

Example:
    >>> from herd.testing.contracts import check_signal
    >>> def test_my_signal_keeps_the_contract():
    ...     check_signal(MySignal)
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import inspect
import time
from collections.abc import Mapping
from typing import Any

import msgspec

from herd.interfaces import (
    Backend,
    BackendContext,
    FallbackPolicy,
    InferenceRequest,
    NodeFailure,
    Signal,
    TraceSink,
    UpstreamReply,
)
from herd.node_view import VIEW_FIELDS, LoadedModel, ModelEntry, NodeReport, NodeView
from herd.settings import NodeConfig
from herd.trace import AttemptRecord, RequestTrace

__all__ = [
    "check_backend",
    "check_fallback_policy",
    "check_signal",
    "check_trace_sink",
    "sample_nodes",
    "sample_requests",
    "sample_trace",
]

MODEL = "contract-model:1b"
MISSING = "herd-contract-missing:0"
GB = 10**9


def sample_nodes() -> list[NodeView]:
    """Nodes in the states a plugin meets: idle, busy, loaded, cold, offline, draining."""
    nodes = []
    for index, (status, loaded, busy, draining) in enumerate(
        [
            ("online", True, 0, False),
            ("online", False, 3, False),
            ("degraded", True, 7, False),
            ("offline", False, 0, False),
            ("online", True, 1, True),
        ]
    ):
        view = NodeView(
            name=f"node{index}",
            url=f"http://node{index}.invalid:11434",
            status=status,
            capabilities=frozenset({"text", "embed"}),
            num_parallel=4 if index % 2 else 0,
            vram_total=(index + 1) * 8 * GB,
            draining=draining,
            gpus=[{"temperature": 40 + 10 * index}] if index < 3 else [],
        )
        view.models[MODEL] = ModelEntry(name=MODEL, key=MODEL, size=2 * GB)
        if loaded:
            view.loaded[MODEL] = LoadedModel(
                name=MODEL, key=MODEL, size=2 * GB, size_vram=2 * GB, context_length=4096
            )
        view.in_flight = view.in_flight_by_model[MODEL] = busy
        nodes.append(view)
    return nodes


def sample_requests() -> list[InferenceRequest]:
    """A chat, a long streamed generate with images, and an embeddings request."""
    return [
        InferenceRequest("ollama", "chat", "text", MODEL, MODEL, {}, True, request_id="c1"),
        InferenceRequest(
            "openai",
            "generate",
            "text",
            MODEL,
            MODEL,
            {},
            True,
            num_ctx=32768,
            prompt_tokens=30000,
            images=2,
            session="chat:abc",
            request_id="c2",
        ),
        InferenceRequest("ollama", "embed", "embed", MODEL, MODEL, {}, False, request_id="c3"),
    ]


def sample_trace(status: str = "completed", node: str = "node0") -> RequestTrace:
    """A finished request's trace (``status`` and ``node`` as given)."""
    now = time.time()
    return RequestTrace(
        request_id=f"contract-{status}",
        api="ollama",
        endpoint="chat",
        kind="text",
        model=MODEL,
        served_model=MODEL if node else "",
        node=node,
        status=status,
        http_status=200 if status == "completed" else 502,
        received_at=now - 1,
        first_byte_at=now - 0.5,
        done_at=now,
        ttft_ms=500.0,
        latency_ms=1000.0,
        prompt_tokens=10,
        completion_tokens=20,
        attempts=[AttemptRecord(node, now - 1, now - 0.5)] if node else [],
    )


def _config(cls: type, config: Any) -> Any:
    assert isinstance(getattr(cls, "name", None), str) and cls.name, (
        f"{cls.__name__} needs a non-empty class attribute `name` (its YAML name)"
    )
    assert issubclass(cls.Config, msgspec.Struct), f"{cls.__name__}.Config must be a Struct"
    return config if config is not None else msgspec.convert({}, cls.Config)


def check_signal(cls: type[Signal], config: Any = None) -> None:
    """A signal is pure and synchronous: scores in [0, 1], ``scores`` agrees with ``score``,
    reasons are strings, and ``observe`` takes any trace."""
    assert issubclass(cls, Signal), f"{cls.__name__} is not a herd.interfaces.Signal"
    signal = cls(_config(cls, config))
    for method in ("prepare", "reject", "score", "scores", "observe"):
        assert not inspect.iscoroutinefunction(getattr(signal, method)), (
            f"{cls.__name__}.{method} must be synchronous (signals never await)"
        )
    nodes = sample_nodes()
    for request in sample_requests():
        rejected = signal.prepare(request, nodes)
        assert rejected is None or isinstance(rejected, Mapping), "prepare returns a mapping"
        for name, reason in (rejected or {}).items():
            assert isinstance(name, str) and isinstance(reason, str) and reason
        batch = signal.scores(request, nodes)
        assert len(batch) == len(nodes), "scores returns one score per node"
        for node, value in zip(nodes, batch, strict=True):
            reason = signal.reject(request, node)
            assert reason is None or (isinstance(reason, str) and reason), "a reason is text"
            one = signal.score(request, node)
            for score in (one, value):
                assert isinstance(score, (int, float)) and 0.0 <= score <= 1.0, (
                    f"{cls.__name__} scored {node.name} {score!r}, outside [0, 1]"
                )
            assert abs(one - value) < 1e-9, "scores() must agree with score()"
        _check_cached(signal, request, nodes, batch)
    for status, node in (("completed", "node0"), ("failed", "node1"), ("rejected", "")):
        signal.observe(sample_trace(status, node))


def _check_cached(
    signal: Signal, request: InferenceRequest, nodes: list[NodeView], batch: list[float]
) -> None:
    """A signal that opts in to caching: one node's value depends on that node alone,
    and ``settle`` over the values gives what ``prepare`` and ``scores`` give."""
    if signal.cache_key(request, nodes) is None:
        return
    values = signal.node_values(request, nodes)
    assert len(values) == len(nodes), "node_values returns one value per node"
    alone = [signal.node_values(request, [node])[0] for node in nodes]
    assert values == alone, "a node's value must depend on that node alone (and the key)"
    scores, verdicts = signal.settle(request, nodes, values)
    assert len(scores) == len(nodes), "settle returns one score per node"
    for cached, fresh in zip(scores, batch, strict=True):
        assert abs(cached - fresh) < 1e-9, "settle(node_values) must agree with scores()"
    if signal.reads is not None:
        _check_reads(signal, request, nodes, values)
    if signal.request_reads is not None:
        _check_request_reads(signal, request, nodes, (scores, verdicts))


def _check_reads(
    signal: Signal, request: InferenceRequest, nodes: list[NodeView], values: list
) -> None:
    """``Signal.reads`` names every view field ``node_values`` reads: a node whose other
    fields change keeps its value."""
    name = type(signal).__name__
    unknown = set(signal.reads or ()) - VIEW_FIELDS
    assert not unknown, f"{name}.reads names no NodeView field: {sorted(unknown)}"
    for node, value in zip(nodes, values, strict=True):
        for field in sorted(VIEW_FIELDS - signal.reads - {"name"}):
            changed = copy.copy(node)
            setattr(changed, field, _other(field, getattr(node, field), request.model_key))
            signal.cache_key(request, [changed])  # (a key may note what node_values uses)
            after = signal.node_values(request, [changed])[0]
            signal.cache_key(request, nodes)
            assert after == value or (after != after and value != value), (
                f"{name}.node_values reads {field!r} (it changed {node.name}'s value from "
                f"{value!r} to {after!r}): name it in {name}.reads"
            )


def _check_request_reads(
    signal: Signal, request: InferenceRequest, nodes: list[NodeView], settled: tuple
) -> None:
    """``Signal.request_reads`` names every request field ``cache_key`` and ``settle``
    read: a request that differs in another one gets the same key, scores and verdicts."""
    name = type(signal).__name__
    known = {f.name for f in dataclasses.fields(InferenceRequest)}
    unknown = set(signal.request_reads or ()) - known
    assert not unknown, f"{name}.request_reads names no InferenceRequest field: {unknown}"
    key = signal.cache_key(request, nodes)
    values = signal.node_values(request, nodes)
    for field in sorted(known - signal.request_reads):
        other = copy.copy(request)
        setattr(other, field, _other(field, getattr(request, field), request.model_key))
        assert signal.cache_key(other, nodes) == key and (
            signal.settle(other, nodes, values) == settled
        ), f"{name}'s cache_key or settle reads the request's {field!r}: name it in request_reads"
        signal.cache_key(request, nodes)


def _other(field: str, value: Any, key: str) -> Any:
    """Another value of the same kind for a view's or a request's ``field``."""
    if field == "status":
        return "degraded" if value == "online" else "online"
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value * 2 + 30000  # (big enough to move what depends on it)
    if isinstance(value, float):
        return value + 7.5 if value else time.time() - 30.0
    if isinstance(value, str):
        return value + "-other"
    if isinstance(value, bytes):
        return b'{"other": 1}'
    if isinstance(value, frozenset) or field == "primary_capabilities":
        return (value or frozenset()) ^ {"embed"}
    if value is None:  # (num_ctx, num_predict)
        return 30000
    if isinstance(value, list):
        return [*value, {"temperature": 95}] if field == "gpus" else [*value, "other"]
    if isinstance(value, dict):
        if key in value:
            return {k: v for k, v in value.items() if k != key}
        return {**value, key: _entry(field, key)}
    return value


def _entry(field: str, key: str) -> Any:
    if field == "models":
        return ModelEntry(name=key, key=key, size=GB)
    if field == "loaded":
        return LoadedModel(name=key, key=key, size=GB, size_vram=GB, context_length=2048)
    if field == "service_models":
        return {key: ModelEntry(name=key, key=key, size=GB)}
    if field in ("unloaded_at",):
        return time.time() - 60.0
    if field == "loading":
        return 8192
    return 2


def check_fallback_policy(cls: type[FallbackPolicy], config: Any = None) -> None:
    """A fallback policy picks an untried candidate or gives up, and substitutes by name."""
    assert issubclass(cls, FallbackPolicy), f"{cls.__name__} is not a FallbackPolicy"
    policy = cls(_config(cls, config))
    nodes = [n for n in sample_nodes() if n.status != "offline"]
    request = sample_requests()[0]
    tried: list[str] = []
    for _ in nodes:
        chosen = policy.next_node(request, nodes, list(tried))
        if chosen is None:
            break
        assert chosen in nodes, "next_node returns one of the ranked candidates"
        assert chosen.name not in tried, f"next_node returned {chosen.name}, already tried"
        tried.append(chosen.name)
    assert policy.next_node(request, nodes, [n.name for n in nodes]) is None, (
        "next_node gives up (None) when every candidate was tried"
    )
    assert policy.next_node(request, [], []) is None, "no candidates: None"
    for same_category in (False, True):
        substitute = policy.substitute(request, nodes, same_category)
        assert substitute is None or isinstance(substitute, str), "substitute returns a name"


def check_trace_sink(cls: type[TraceSink], data_dir: str = "", config: Any = None) -> None:
    """A sink starts, takes traces without blocking or raising (any status), and stops."""
    assert issubclass(cls, TraceSink), f"{cls.__name__} is not a TraceSink"
    assert not inspect.iscoroutinefunction(cls.submit), "submit must not be a coroutine"

    async def run() -> None:
        sink = cls(_config(cls, config), data_dir)
        await sink.start()
        try:
            for index in range(200):
                status = ("completed", "failed", "rejected", "client_disconnected")[index % 4]
                result = sink.submit(sample_trace(status, "" if status == "rejected" else "n"))
                assert result is None, "submit returns nothing"
        finally:
            await sink.stop()

    asyncio.run(run())


async def check_backend(
    cls: type[Backend],
    url: str,
    *,
    model: str,
    capability: str = "text",
    config: Any = None,
) -> NodeReport:
    """A backend polls its node, opens requests up to their first byte, reads the rest,
    reports a missing model as a NodeFailure (or the node's 4xx), and refuses or does model
    management with NodeFailure, never another exception.

    Args:
        cls: The backend class.
        url: A running node it can talk to (on 127.0.0.1 in tests).
        model: A model the node serves for ``capability``.
        capability: ``text`` (a streamed chat) or ``embed``.
    """
    import aiohttp

    assert issubclass(cls, Backend), f"{cls.__name__} is not a herd.interfaces.Backend"
    node = msgspec.convert({"name": "contract", "url": url, "type": cls.name}, NodeConfig)
    async with aiohttp.ClientSession() as http:
        backend = cls(node, _config(cls, config), BackendContext(http=http))
        report = await backend.poll()
        assert isinstance(report, NodeReport), "poll returns a NodeReport"
        assert capability in cls.capabilities, f"{cls.name} does not declare {capability}"
        key = next((m.key for m in report.models if m.name == model or m.key == model), model)
        if capability == "text":
            body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
            request = InferenceRequest("ollama", "chat", "text", model, key, body, True)
        else:
            body = {"model": model, "input": ["one", "two"]}
            request = InferenceRequest("ollama", "embed", "embed", model, key, body, False)
        reply = await backend.open(request)
        await _read_whole(reply, streaming_expected=capability == "text")
        missing = InferenceRequest(
            "ollama",
            request.endpoint,
            request.kind,
            MISSING,
            MISSING,
            {**body, "model": MISSING},
            False,
        )
        try:
            refused = await backend.open(missing)
        except NodeFailure:
            pass
        else:
            assert refused.status >= 400, "a missing model is a NodeFailure or a 4xx reply"
            await refused.aclose()
        for operation in (backend.delete(MISSING), backend.unload(MISSING)):
            try:
                answer = await operation
            except NodeFailure:
                continue
            assert isinstance(answer, UpstreamReply), "model operations return a reply"
            await answer.aclose()
        await backend.close()
    return report


async def _read_whole(reply: UpstreamReply, *, streaming_expected: bool) -> None:
    assert isinstance(reply, UpstreamReply), "open returns an UpstreamReply"
    assert reply.status == 200, f"the node answered {reply.status}: {reply.first[:200]!r}"
    assert reply.first.strip(), "the first byte is there when open returns"
    lines = [reply.first]
    try:
        if reply.streaming:
            async for line in reply.rest():
                assert line.endswith(b"\n") and line.strip(), "rest() yields whole lines"
                lines.append(line)
    finally:
        await reply.aclose()
    last = msgspec.json.decode(lines[-1])
    assert isinstance(last, dict), "answers are JSON objects"
    if streaming_expected:
        assert last.get("done") is True, "a text answer ends with its final object"
