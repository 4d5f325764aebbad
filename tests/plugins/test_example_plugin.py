"""docs/examples/herd-gpu-temp, installed as a real distribution: found, configured, used.

``.ci/run`` pip-installs it into the test environment (``pip install
./docs/examples/herd-gpu-temp``); nothing here imports it by path.
"""

from __future__ import annotations

from importlib.metadata import entry_points

import httpx
import pytest
from herd._engine.config import load_settings
from herd._engine.plugins import make_plugin_manager
from herd.testing.router_runner import RouterHandle

from tests.conftest import emulated

MODEL = "llama3.2:3b"


@pytest.fixture
def installed() -> None:
    names = {ep.name for ep in entry_points(group="herd")}
    assert "gpu-temp" in names, "pip install ./docs/examples/herd-gpu-temp (as .ci/run does)"


def test_the_plugin_is_found_through_its_entry_point(installed) -> None:
    pm = make_plugin_manager(load_settings(None, env={}), env={})
    plugin = pm.get_plugin("gpu-temp")
    assert plugin is not None and plugin.__name__ == "herd_gpu_temp"
    blocked = make_plugin_manager(
        load_settings(None, env={}), env={"HERD_DISABLE_PLUGINS": "gpu-temp"}
    )
    assert blocked.get_plugin("gpu-temp") is None


def test_configured_from_yaml_it_steers_requests_off_a_hot_gpu(
    installed, make_sim, tmp_path
) -> None:
    a = make_sim(name="a", models=[emulated(MODEL)])
    b = make_sim(name="b", models=[emulated(MODEL)])
    config = tmp_path / "herd.yaml"
    config.write_text(
        f"""
data_dir: ""
fleet: {{discover_local: false}}
nodes:
  - {{name: a, url: "{a.url}"}}
  - {{name: b, url: "{b.url}"}}
routing:
  signals:
    gpu-temp: {{weight: 6, cool_c: 50, hot_c: 80}}
"""
    )
    with RouterHandle(load_settings(config, env={})) as router:
        [signal] = [s for s in router.gateway.signals if s.name == "gpu-temp"]
        assert signal.weight == 6 and signal.config.hot_c == 80
        assert ask(router) == "a"  # a twin fleet: configuration order decides

        async def report_temperatures() -> None:  # as each node's agent would
            nodes = router.gateway.fleet.nodes
            nodes["a"].view.gpus = [{"index": 0, "temperature": 84.0}]
            nodes["b"].view.gpus = [{"index": 0, "temperature": 55.0}]

        router.call(report_temperatures())
        assert ask(router) == "b"
        explained = httpx.get(router.url + "/fleet/explain", params={"model": MODEL}).json()
        signals = {r["node"]: r["signals"]["gpu-temp"] for r in explained["ranked"]}
        assert signals == {"b": pytest.approx(25 / 30, abs=1e-3), "a": 0.0}


def ask(router: RouterHandle) -> str:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": False}
    reply = httpx.post(router.url + "/api/chat", json=body, timeout=30)
    assert reply.status_code == 200
    return reply.headers["x-herd-node"]
