"""The contract suites of herd.testing, run against every built-in and the example plugin."""

from __future__ import annotations

import asyncio

import pytest
from herd._engine.config import load_settings
from herd._engine.plugins import collect_classes, make_plugin_manager
from herd.testing import SimConfig, SimNode
from herd.testing.contracts import (
    check_backend,
    check_fallback_policy,
    check_signal,
    check_trace_sink,
)
from herd_gpu_temp import GpuTemperatureSignal

from tests.conftest import emulated

PM = make_plugin_manager(load_settings(None, env={}), env={})
SIGNALS = collect_classes(PM.hook.herd_register_signals())
SINKS = collect_classes(PM.hook.herd_register_sinks())
POLICIES = collect_classes(PM.hook.herd_register_fallback_policies())
BACKENDS = collect_classes(PM.hook.herd_register_backends())


def test_every_kind_of_built_in_is_covered() -> None:
    assert len(SIGNALS) >= 8 and SINKS and POLICIES and len(BACKENDS) >= 2


@pytest.mark.parametrize("name", sorted(SIGNALS))
def test_built_in_signals_keep_the_signal_contract(name: str) -> None:
    check_signal(SIGNALS[name])


def test_the_example_plugin_keeps_the_signal_contract() -> None:
    check_signal(GpuTemperatureSignal)


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_built_in_fallback_policies_keep_the_contract(name: str) -> None:
    check_fallback_policy(POLICIES[name])


@pytest.mark.parametrize("name", sorted(SINKS))
def test_built_in_sinks_keep_the_contract(name: str, tmp_path) -> None:
    check_trace_sink(SINKS[name], str(tmp_path))


def test_the_ollama_backend_keeps_the_contract() -> None:
    models = [emulated("contract-chat:1b"), emulated("contract-embed:1b", caps=("embedding",))]
    with SimNode(SimConfig(name="contract", port=0, models=models)) as node:
        report = asyncio.run(check_backend(BACKENDS["ollama"], node.url, model="contract-chat:1b"))
        assert any(m.name == "contract-chat:1b" for m in report.models)
        asyncio.run(
            check_backend(
                BACKENDS["ollama"], node.url, model="contract-embed:1b", capability="embed"
            )
        )


def test_the_openai_compatible_backend_keeps_the_contract() -> None:
    from herd_services import ServicesConfig, ServicesHandle

    from tests.plugins.test_backend_openai_compat import LengthEmbedder

    handle = ServicesHandle([LengthEmbedder("minilm")], ServicesConfig(port=0)).start()
    try:
        cls = BACKENDS["openai-compat"]
        asyncio.run(check_backend(cls, handle.url, model="minilm", capability="embed"))
    finally:
        handle.stop()


def test_a_backend_that_breaks_the_contract_is_told_so() -> None:
    class Liar(BACKENDS["ollama"]):  # type: ignore[misc, valid-type]
        name = "liar"

        async def poll(self):  # type: ignore[no-untyped-def]
            return {"models": []}

    with (
        SimNode(SimConfig(name="liar", port=0)) as node,
        pytest.raises(AssertionError, match="NodeReport"),
    ):
        asyncio.run(check_backend(Liar, node.url, model="llama3.2:3b"))


def test_a_signal_that_breaks_the_contract_is_told_so() -> None:
    class Overeager(GpuTemperatureSignal):
        name = "overeager"

        def score(self, request, node):  # type: ignore[no-untyped-def]
            return 2.0

    with pytest.raises(AssertionError, match="outside"):
        check_signal(Overeager)


def test_a_signal_that_reads_more_than_it_declares_is_told_so() -> None:
    from herd_plugins.signal_context_fit import ContextFitSignal
    from herd_plugins.signal_queue_depth import QueueDepthSignal

    class Forgetful(QueueDepthSignal):
        name = "forgetful"
        reads = QueueDepthSignal.reads - {"in_flight_by_model"}

    with pytest.raises(AssertionError, match="reads 'in_flight_by_model'"):
        check_signal(Forgetful)

    class Hasty(ContextFitSignal):
        name = "hasty"
        request_reads = frozenset({"model_key"})  # its settle reads the prompt's length too

    with pytest.raises(AssertionError, match=r"request's 'num_ctx'"):
        check_signal(Hasty)

    class Misspelt(QueueDepthSignal):
        name = "misspelt"
        reads = frozenset({"inflight"})

    with pytest.raises(AssertionError, match="names no NodeView field"):
        check_signal(Misspelt)
