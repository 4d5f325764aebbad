"""One plugin manager per app: built-ins, entry points, and plugins named in YAML."""

from __future__ import annotations

import importlib
import logging
import os
from typing import Any

import pluggy

from herd import hookspecs

__all__ = ["BUILTIN_PLUGINS", "PluginLoadError", "collect_classes", "make_plugin_manager"]

log = logging.getLogger("herd.plugins")

#: Built-in plugin modules, registered exactly like third-party ones.
BUILTIN_PLUGINS: tuple[str, ...] = (
    "herd_plugins.backend_ollama",
    "herd_plugins.backend_openai",
    "herd_plugins.backend_openai_compat",
    "herd_plugins.signal_thermal",
    "herd_plugins.signal_memory_fit",
    "herd_plugins.signal_queue_depth",
    "herd_plugins.signal_wait_time",
    "herd_plugins.signal_role_affinity",
    "herd_plugins.signal_availability",
    "herd_plugins.signal_context_fit",
    "herd_plugins.signal_session",
    "herd_plugins.fallback_next_best",
    "herd_plugins.model_aliases",
    "herd_plugins.sink_duckdb",
    "herd_plugins.sink_otel",
    "herd_plugins.metrics_prometheus",
    "herd_plugins.dashboard",
)


class PluginLoadError(RuntimeError):
    """A plugin could not be loaded; start-up stops and names it."""


def _disabled(settings: Any, env: dict[str, str] | os._Environ[str]) -> set[str]:
    names = set(getattr(getattr(settings, "plugins", None), "disable", []) or [])
    names |= {n.strip() for n in env.get("HERD_DISABLE_PLUGINS", "").split(",") if n.strip()}
    return names


def _short(module: str) -> str:
    return module.rsplit(".", 1)[-1].replace("_", "-")


def plugin_names(module: str) -> set[str]:
    """The names ``plugins.disable`` takes for a module: its path, ``sink-duckdb`` and
    ``sink_duckdb`` (the last is how the start-up line used to print it)."""
    return {module, _short(module), module.rsplit(".", 1)[-1]}


def make_plugin_manager(settings: Any = None, *, env: Any = None) -> pluggy.PluginManager:
    """Build a plugin manager with the hookspecs, built-ins, entry points and YAML plugins.

    A plugin can be disabled by its registered name, its module path or its short name
    (``backend-ollama`` for ``herd_plugins.backend_ollama``), through YAML
    ``plugins.disable`` or ``HERD_DISABLE_PLUGINS`` (comma-separated).

    Args:
        settings: The router's settings (for ``plugins.disable`` / ``plugins.load``).
        env: Environment mapping (default ``os.environ``).

    Returns:
        A new ``pluggy.PluginManager`` for project ``herd``.

    Raises:
        PluginLoadError: a plugin failed to import or register; the message names it.

    Example:
        >>> pm = make_plugin_manager()
        >>> "herd_plugins.backend_ollama" in {name for name, _ in pm.list_name_plugin()}
        True
    """
    env = os.environ if env is None else env
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    disabled = _disabled(settings, env)
    for name in disabled:
        pm.set_blocked(name)

    known: set[str] = set()  # every name a plugin answers to, to find names that match none

    def is_disabled(module: str) -> bool:
        known.update(plugin_names(module))
        return bool(plugin_names(module) & disabled)

    extra = list(getattr(getattr(settings, "plugins", None), "load", []) or [])
    for module in (*BUILTIN_PLUGINS, *extra):
        if is_disabled(module):
            continue
        try:
            pm.register(importlib.import_module(module), name=module)
        except Exception as exc:
            raise PluginLoadError(f"plugin {module!r} failed to load: {exc}") from exc
    try:
        from importlib.metadata import entry_points

        for ep in entry_points(group=hookspecs.PROJECT):
            known.add(ep.name)
            if ep.name in disabled or is_disabled(ep.value):
                continue
            try:
                plugin = ep.load()
                pm.register(plugin, name=ep.name)
            except Exception as exc:
                raise PluginLoadError(
                    f"plugin {ep.name!r} (entry point {ep.value}) failed to load: {exc}"
                ) from exc
    except PluginLoadError:
        raise
    unmatched = sorted(disabled - known)
    if unmatched:  # a typo would otherwise leave the plugin running without a word
        choices = sorted(name for name in known if "." not in name and "_" not in name)
        log.warning(
            "plugins.disable: no plugin is named %s (plugins: %s)",
            ", ".join(unmatched),
            ", ".join(choices),
        )
    pm.check_pending()
    return pm


def collect_classes(hook_results: list[list[type]] | None) -> dict[str, type]:
    """Flatten the lists a ``herd_register_*`` hook returned into ``{name: class}``.

    Raises:
        PluginLoadError: two classes claim one name.
    """
    out: dict[str, type] = {}
    for batch in hook_results or []:
        for cls in batch or []:
            name = getattr(cls, "name", None)
            if not name:
                raise PluginLoadError(f"{cls!r} has no `name`")
            if name in out and out[name] is not cls:
                raise PluginLoadError(
                    f"two plugins register {name!r}: {out[name].__module__} and {cls.__module__}"
                )
            out[name] = cls
    return out
