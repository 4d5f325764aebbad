"""Live settings: a validated patch reaches the running router at once and is saved."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from herd._engine.app import create_app
from herd._engine.config import load_settings
from herd._engine.gateway import Gateway
from herd._engine.live_settings import FILE_NAME, redact
from herd.errors import HerdError


def make_gateway(data_dir: str = "", **overrides: Any) -> Gateway:
    settings = load_settings(
        None,
        env={},
        overrides={"data_dir": data_dir, "fleet": {"discover_local": False}, **overrides},
    )
    return create_app(settings).state.gateway


def run_started(gateway: Gateway, check: Callable[[Gateway], Awaitable[None] | None]) -> None:
    async def main() -> None:
        await gateway.start()
        try:
            result = check(gateway)
            if result is not None:
                await result
        finally:
            await gateway.stop()

    asyncio.run(main())


def test_a_bad_patch_is_refused_naming_every_bad_key_and_nothing_changes() -> None:
    gateway = make_gateway()
    before = gateway.settings
    with pytest.raises(HerdError) as caught:
        gateway.live_settings.update(
            {
                "auto_pull": "yes",
                "routing": {"context_protection": "always", "max_retries": 3},
                "routing.signals.nope.weight": 1,
                "routing.signals.thermal.weight": -2,
                "colour": "blue",
            }
        )
    message = caught.value.message
    assert caught.value.status == 400
    for key in (
        "auto_pull: expected `bool`",
        "routing.context_protection",
        "routing.max_retries: cannot change while the router runs",
        "unknown signal 'nope'",
        "routing.signals.thermal.weight: expected `float` >= 0.0",
        "colour: unknown setting",
    ):
        assert key in message
    assert gateway.settings is before
    assert gateway.live_settings.overrides == {}


def test_nested_dotted_and_bare_keys_reach_the_same_setting() -> None:
    gateway = make_gateway()
    live = gateway.live_settings
    for patch in (
        {"routing": {"vram_fallback": True}},
        {"routing.vram_fallback": False},
        {"vram_fallback": True},
    ):
        live.update(patch)
        assert gateway.settings.routing.vram_fallback is next(iter(_leaves(patch)))
    live.update({"workloads": {"transcription": True}, "image_generation": True})
    assert gateway.settings.workloads.transcription is True
    assert gateway.settings.workloads.image_generation is True


def _leaves(patch: dict[str, Any]) -> list[Any]:
    out: list[Any] = []
    for value in patch.values():
        out.extend(_leaves(value) if isinstance(value, dict) else [value])
    return out


def test_toggles_reach_the_running_scheduler() -> None:
    def check(gateway: Gateway) -> None:
        scheduler = gateway.scheduler
        assert scheduler is not None and scheduler.puller is None
        gateway.live_settings.update(
            {"auto_pull": True, "vram_fallback": True, "context_protection": "strip"}
        )
        assert scheduler.puller is not None
        assert scheduler.routing.vram_fallback is True
        assert scheduler.shaper.mode == "strip"
        gateway.live_settings.update({"auto_pull": False})
        assert scheduler.puller is None

    run_started(make_gateway(), check)


def test_signal_weights_change_in_place_and_zero_takes_a_signal_out() -> None:
    def check(gateway: Gateway) -> None:
        scheduler = gateway.scheduler
        assert scheduler is not None
        thermal = next(s for s in gateway.signals if s.name == "thermal")
        gateway.live_settings.update({"routing.signals.thermal.weight": 10})
        assert thermal.weight == 10.0
        shares = dict(zip(scheduler.ranker._names, scheduler.ranker._shares, strict=True))
        assert shares["thermal"] == pytest.approx(10 / scheduler.ranker.weight_sum)
        gateway.live_settings.update({"routing": {"signals": {"thermal": {"weight": 0}}}})
        assert "thermal" not in [s.name for s in scheduler.signals]
        assert gateway.live_settings.weights()["thermal"] == 0.0
        gateway.live_settings.update({"routing.signals.thermal.weight": None})
        back = next(s for s in scheduler.signals if s.name == "thermal")
        assert back is thermal and back.weight == thermal.config.weight

    run_started(make_gateway(), check)


def test_overrides_are_saved_and_applied_again_at_start(tmp_path: Path) -> None:
    gateway = make_gateway(str(tmp_path))
    gateway.live_settings.update({"auto_pull": True, "routing.signals.queue-depth.weight": 7})
    saved = json.loads((tmp_path / FILE_NAME).read_text())
    assert saved["overrides"] == {
        "routing.auto_pull": True,
        "routing.signals.queue-depth.weight": 7.0,
    }

    def check(restarted: Gateway) -> None:
        assert restarted.settings.routing.auto_pull is True
        assert restarted.scheduler is not None and restarted.scheduler.puller is not None
        assert restarted.live_settings.weights()["queue-depth"] == 7.0
        assert restarted.live_settings.base.routing.auto_pull is False  # the YAML value
        restarted.live_settings.update({"auto_pull": None})  # back to the YAML value
        assert restarted.settings.routing.auto_pull is False

    run_started(make_gateway(str(tmp_path)), check)
    assert "routing.auto_pull" not in json.loads((tmp_path / FILE_NAME).read_text())["overrides"]


def test_a_value_equal_to_the_yaml_one_is_no_override(tmp_path: Path) -> None:
    gateway = make_gateway(str(tmp_path), routing={"auto_pull": True})
    gateway.live_settings.update({"auto_pull": True})
    assert gateway.live_settings.overrides == {}


def test_a_saved_override_that_no_longer_fits_is_skipped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    body = {"overrides": {"routing.auto_pull": True, "routing.signals.gone.weight": 2}}
    (tmp_path / FILE_NAME).write_text(json.dumps(body))
    caplog.set_level(logging.WARNING, logger="herd.settings")

    def check(gateway: Gateway) -> None:
        assert gateway.settings.routing.auto_pull is True
        assert gateway.live_settings.overrides == {"routing.auto_pull": True}

    run_started(make_gateway(str(tmp_path)), check)
    assert "unknown signal 'gone'" in caplog.text


def test_without_a_data_dir_nothing_is_written(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.chdir(tmp_path)
    gateway = make_gateway("")
    gateway.live_settings.update({"auto_pull": True})
    assert gateway.live_settings.path is None
    assert list(tmp_path.iterdir()) == []


def test_the_view_redacts_secrets_and_names_the_overrides() -> None:
    gateway = make_gateway(
        auth={"admin_key": "admin-secret", "api_keys": [{"name": "ci", "key": "ci-secret-key"}]}
    )
    gateway.live_settings.update({"transcription": True})
    view = gateway.live_settings.view()
    text = json.dumps(view)
    assert "admin-secret" not in text and "ci-secret-key" not in text
    assert view["effective"]["auth"]["api_keys"] == [{"name": "ci", "key": "********"}]
    assert view["overrides"] == {"workloads.transcription": {"value": True, "configured": False}}
    assert view["live"]["workloads.transcription"] is True


def test_redact_replaces_secret_values_only() -> None:
    data = {
        "node_token": "t0k3n",
        "admin_key": "",
        "keep_alive": {"*": "5m"},
        "options": {"api_key": "sk-123", "headers": {"Authorization": "Bearer x"}},
    }
    assert redact(data) == {
        "node_token": "********",
        "admin_key": "",
        "keep_alive": {"*": "5m"},
        "options": {"api_key": "********", "headers": {"Authorization": "********"}},
    }
