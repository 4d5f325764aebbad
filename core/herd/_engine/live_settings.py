"""Settings an operator changes while the router runs (the dashboard's Settings tab).

A handful of keys take effect at once: the toggles below and every signal's weight.
A change is a JSON patch, nested (``{"routing": {"auto_pull": true}}``), dotted
(``{"routing.auto_pull": true}``) or, for the toggles, by bare name
(``{"auto_pull": true}``); ``null`` removes an override, so the YAML value applies again.
Each value is checked against the type and limits of its key in :mod:`herd.settings`; an
unknown key, a key that cannot change at run time or a value of the wrong type is a
``400`` that names every one of them, and nothing changes.

Accepted changes replace ``gateway.settings`` with a new frozen
:class:`~herd.settings.Settings` (readers that look it up per request see it on their next
request), reach the scheduler (fallback, auto-pull, context protection) and the signals
(weights, in place), and are saved in ``<data_dir>/settings.json``. On start-up the saved
overrides are applied over the YAML file (they are the operator's later word).
"""

from __future__ import annotations

import logging
import math
import os
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import msgspec

from herd._engine.audit import audit
from herd._engine.scheduling.auto_pull import AutoPuller
from herd._engine.scheduling.ranking import Ranker
from herd.errors import HerdError
from herd.interfaces import Signal
from herd.net import without_credentials
from herd.settings import Settings

if TYPE_CHECKING:
    from herd._engine.gateway import Gateway

__all__ = ["FILE_NAME", "LIVE_KEYS", "LiveSettings", "redact"]

log = logging.getLogger("herd.settings")

FILE_NAME = "settings.json"
FILE_VERSION = 1

#: Keys that take effect at once, with what each does.
LIVE_KEYS: dict[str, str] = {
    "routing.auto_pull": "Pull a model no node has onto the best node with room.",
    "routing.vram_fallback": "Serve a loaded model of the same category instead of a cold load.",
    "routing.context_protection": "How num_ctx is handled: pin, strip, warn or passthrough.",
    "workloads.image_generation": "Serve image generation.",
    "workloads.transcription": "Serve speech-to-text.",
}
_BARE = {key.rsplit(".", 1)[1]: key for key in LIVE_KEYS}
_WEIGHT = re.compile(r"^routing\.signals\.([a-z0-9][a-z0-9-]*)\.weight$")
WeightValue = Annotated[float, msgspec.Meta(ge=0, le=1000)]

_SECRET_NAMES = re.compile(r"(^|_)(key|token|secret|password|authorization)$", re.IGNORECASE)
REDACTED = "********"


def redact(value: Any, name: str = "") -> Any:
    """A copy of plain data with every secret replaced by ``********``.

    A secret is a non-empty string under a name such as ``key``, ``admin_key``,
    ``node_token``, ``password`` or ``secret``, any value of a ``headers`` mapping, or the
    password in a URL (``redis://:********@host``).

    Example:
        >>> redact({"auth": {"admin_key": "s3cret", "api_keys": [{"name": "ci", "key": "x"}]}})
        {'auth': {'admin_key': '********', 'api_keys': [{'name': 'ci', 'key': '********'}]}}
    """
    if isinstance(value, dict):
        if name.lower() == "headers":
            return {k: REDACTED for k in value}
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, name) for v in value]
    if isinstance(value, str) and value and _SECRET_NAMES.search(name):
        return REDACTED
    if isinstance(value, str) and "@" in value:  # a URL's password (cluster.redis_url, ...)
        return without_credentials(value, REDACTED)
    return value


class LiveSettings:
    """The overrides the dashboard made, and the way they reach a running gateway.

    Attributes:
        base: The settings from YAML, environment and flags, before any override.
        overrides: Dotted key -> value, as saved in ``settings.json``.
        updated_at: When the overrides last changed (Unix seconds; 0 = never).
    """

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.base: Settings = gateway.settings
        self.overrides: dict[str, Any] = {}
        self.updated_at = 0.0
        self._idle_signals: dict[str, Signal] = {}

    @property
    def path(self) -> Path | None:
        """``<data_dir>/settings.json``; None when ``data_dir`` is empty (nothing saved)."""
        if not self.base.data_dir:
            return None
        return self.base.data_path / FILE_NAME

    # -- reading ------------------------------------------------------------------------

    def view(self) -> dict[str, Any]:
        """What ``GET /dashboard/api/settings`` answers: the live keys, the signal weights,
        the overrides (with the values they replace) and the whole effective configuration,
        secrets redacted."""
        settings = self.gateway.settings
        return {
            "live": {key: _get(settings, key) for key in LIVE_KEYS},
            "descriptions": LIVE_KEYS,
            "choices": {"routing.context_protection": ["pin", "strip", "warn", "passthrough"]},
            "weights": self.weights(),
            "overrides": {
                key: {"value": value, "configured": self._configured(key)}
                for key, value in sorted(self.overrides.items())
            },
            "updated_at": self.updated_at or None,
            "persisted_to": str(self.path) if self.path else None,
            "effective": redact(msgspec.to_builtins(settings)),
        }

    def weights(self) -> dict[str, float]:
        """Every registered signal's weight now (0 = the signal is off)."""
        active = {s.name: s.weight for s in self.gateway.signals}
        return {name: active.get(name, 0.0) for name in self.gateway.signal_classes}

    def _configured(self, key: str) -> Any:
        match = _WEIGHT.match(key)
        if match:
            return self._base_weight(match.group(1))
        return _get(self.base, key)

    def _base_weight(self, name: str) -> float:
        cls = self.gateway.signal_classes[name]
        options = self.base.routing.signals.get(name, {})
        return float(options.get("weight", getattr(cls.Config(), "weight", 1.0)))

    # -- changing -----------------------------------------------------------------------

    def update(self, patch: Any) -> dict[str, Any]:
        """Validate a patch, apply it at once and save it.

        Args:
            patch: A JSON object (see the module docstring).

        Returns:
            The keys changed, dotted, with their new values (None: back to the YAML value).

        Raises:
            HerdError: 400 naming every unknown, fixed or ill-typed key; nothing changes.
        """
        if not isinstance(patch, dict) or not patch:
            raise HerdError(400, 'send a JSON object of settings, e.g. {"auto_pull": true}')
        changes, problems = self._check(_flatten(patch))
        if problems:
            raise HerdError(400, "invalid settings: " + "; ".join(problems), code="invalid")
        merged = dict(self.overrides)
        for key, value in changes.items():
            if value is None or value == self._configured(key):
                merged.pop(key, None)
            else:
                merged[key] = value
        self._apply(merged)
        self.updated_at = time.time()
        self._save()
        audit("settings", changes=", ".join(f"{k}={v!r}" for k, v in changes.items()))
        cluster = getattr(self.gateway, "cluster", None)
        if cluster is not None:  # the other replicas apply it too (cluster.redis_url)
            cluster.settings_changed(changes)
        return changes

    def restore(self) -> None:
        """Apply the overrides saved in ``settings.json`` (start-up); bad ones are skipped
        with a warning that names them."""
        path = self.path
        if path is None or not path.exists():
            return
        try:
            saved = msgspec.json.decode(path.read_bytes())
            overrides = saved["overrides"]
            if not isinstance(overrides, dict):
                raise TypeError("overrides is not an object")
        except (OSError, msgspec.DecodeError, KeyError, TypeError) as exc:
            log.warning("ignoring %s: %s", path, exc)
            return
        changes, problems = self._check(overrides)
        for problem in problems:
            log.warning("%s: skipped %s", path, problem)
        self._apply({k: v for k, v in changes.items() if v is not None})
        self.updated_at = float(saved.get("updated_at") or 0.0)
        if self.overrides:
            log.info("settings from %s: %s", path, ", ".join(sorted(self.overrides)))

    def _check(self, flat: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
        changes: dict[str, Any] = {}
        problems: list[str] = []
        for raw_key, value in flat.items():
            key = _BARE.get(raw_key, raw_key)
            match = _WEIGHT.match(key)
            if match:
                name = match.group(1)
                if name not in self.gateway.signal_classes:
                    known = ", ".join(sorted(self.gateway.signal_classes))
                    problems.append(f"{raw_key}: unknown signal '{name}' (signals: {known})")
                    continue
                expected: Any = WeightValue
            elif key in LIVE_KEYS:
                expected = _field_type(key)
            elif _field_type(key) is not None:
                problems.append(
                    f"{raw_key}: cannot change while the router runs "
                    "(set it in the YAML file and restart)"
                )
                continue
            else:
                problems.append(f"{raw_key}: unknown setting (live settings: {_known()})")
                continue
            if value is None:
                changes[key] = None
                continue
            try:
                converted = msgspec.convert(value, expected)
            except msgspec.ValidationError as exc:
                problems.append(f"{raw_key}: {_lower(str(exc))}")
                continue
            if isinstance(converted, float) and not math.isfinite(converted):
                problems.append(f"{raw_key}: expected a finite number")
                continue
            changes[key] = converted
        return changes, problems

    def _apply(self, overrides: dict[str, Any]) -> None:
        base = self.base
        routing_changes: dict[str, Any] = {}
        workload_changes: dict[str, Any] = {}
        signals = {name: dict(options) for name, options in base.routing.signals.items()}
        for key, value in overrides.items():
            match = _WEIGHT.match(key)
            if match:
                signals.setdefault(match.group(1), {})["weight"] = value
                continue
            section, field = key.split(".", 1)
            (routing_changes if section == "routing" else workload_changes)[field] = value
        routing = msgspec.structs.replace(base.routing, signals=signals, **routing_changes)
        workloads = msgspec.structs.replace(base.workloads, **workload_changes)
        settings = msgspec.structs.replace(base, routing=routing, workloads=workloads)
        self.overrides = overrides
        self._push(settings)

    def _push(self, settings: Settings) -> None:
        """Hand new settings to everything that keeps its own copy."""
        gateway = self.gateway
        gateway.settings = settings
        routing = settings.routing
        self._sync_signals(routing.signals)
        fleet = gateway.fleet
        if fleet is not None:
            fleet.settings = settings
        scheduler = gateway.scheduler
        if scheduler is None:
            return  # not started yet: start() builds the scheduler from these settings
        scheduler.routing = routing
        scheduler.shaper.mode = routing.context_protection
        if not routing.auto_pull:
            scheduler.puller = None
        elif scheduler.puller is None and fleet is not None:
            scheduler.puller = AutoPuller(fleet, routing.auto_pull_timeout_s)
        scheduler.ranker = Ranker(scheduler.signals)

    def _sync_signals(self, options: dict[str, dict[str, Any]]) -> None:
        """Set every signal's weight in place; a signal at 0 leaves the ranking (as at
        start-up) and keeps its state for when it comes back."""
        gateway = self.gateway
        current = {s.name: s for s in gateway.signals} | self._idle_signals
        active: list[Signal] = []
        for name, cls in gateway.signal_classes.items():
            signal = current.get(name)
            wanted = options.get(name, {}).get("weight")
            if signal is None:
                if not wanted:
                    continue
                config = msgspec.convert(options[name], cls.Config, strict=False)
                signal = current[name] = cls(config)
            weight = float(wanted) if wanted is not None else _config_weight(signal)
            signal.weight = weight
            if weight:
                active.append(signal)
        self._idle_signals = {n: s for n, s in current.items() if s.weight == 0}
        gateway.signals[:] = active  # the scheduler holds this same list
        gateway._observers = [s for s in active if type(s).observe is not Signal.observe]

    def _save(self) -> None:
        path = self.path
        if path is None:
            return
        body = {
            "version": FILE_VERSION,
            "updated_at": self.updated_at,
            "overrides": self.overrides,
        }
        temporary = path.with_name(path.name + ".tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary.write_bytes(msgspec.json.format(msgspec.json.encode(body)))
            os.replace(temporary, path)
        except OSError as exc:  # the change holds; only its survival of a restart is lost
            log.warning("could not save the settings to %s: %s", path, exc)


def _config_weight(signal: Signal) -> float:
    return float(getattr(signal.config, "weight", 1.0))


def _flatten(patch: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in patch.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(_flatten(value, dotted + "."))
        else:
            out[dotted] = value
    return out


def _known() -> str:
    return ", ".join([*LIVE_KEYS, "routing.signals.<name>.weight"])


def _lower(message: str) -> str:
    return message[:1].lower() + message[1:]


def _get(settings: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        settings = getattr(settings, part)
    return settings


def _field_type(dotted: str) -> Any:
    """The annotated type of a key of :class:`Settings` (None when there is no such key)."""
    current: Any = Settings
    found: Any = None
    for part in dotted.split("."):
        if not (isinstance(current, type) and issubclass(current, msgspec.Struct)):
            return None
        field = next((f for f in msgspec.structs.fields(current) if f.name == part), None)
        if field is None:
            return None
        found = field.type
        current = getattr(found, "__origin__", found) if hasattr(found, "__metadata__") else found
    return found
