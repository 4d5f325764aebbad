"""FirstAnswer calls a firstresult hook's implementations as pluggy would."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pluggy
import pytest
from herd._engine.hook_calls import FirstAnswer

spec = pluggy.HookspecMarker("demo")
impl = pluggy.HookimplMarker("demo")


class Spec:
    @spec(firstresult=True)
    def resolve(self, model: str, api: str, settings: Any) -> str | None:
        """The spec."""


def manager(*plugins: object) -> pluggy.PluginManager:
    pm = pluggy.PluginManager("demo")
    pm.add_hookspecs(Spec)
    for plugin in plugins:
        pm.register(plugin)
    return pm


class Calls:
    """Records which plugin answered what, in order."""

    def __init__(self) -> None:
        self.seen: list[str] = []


def plugin(log: Calls, name: str, answer: str | None, **marks: bool) -> object:
    class Plugin:
        @impl(**marks)
        def resolve(self, model: str) -> str | None:  # a subset of the arguments
            log.seen.append(f"{name}:{model}")
            return answer

    Plugin.__name__ = name
    return Plugin()


def both(pm: pluggy.PluginManager, log: Calls, **kwargs: Any) -> tuple[Any, list[str]]:
    """pluggy's answer and calls, then FirstAnswer's; the two must agree."""
    log.seen.clear()
    expected = pm.hook.resolve(**kwargs)
    theirs = list(log.seen)
    log.seen.clear()
    ours = FirstAnswer(pm.hook.resolve)(**kwargs)
    assert (ours, log.seen) == (expected, theirs)
    return ours, theirs


ARGS = {"model": "m", "api": "ollama", "settings": None}


def test_order_and_the_first_answer_are_pluggys() -> None:
    log = Calls()
    pm = manager(
        plugin(log, "last", "from-last", trylast=True),
        plugin(log, "a", None),
        plugin(log, "b", "from-b"),
        plugin(log, "first", None, tryfirst=True),
    )
    assert both(pm, log, **ARGS) == ("from-b", ["first:m", "b:m"])


def test_no_answer_is_none_after_asking_every_plugin() -> None:
    log = Calls()
    pm = manager(plugin(log, "a", None), plugin(log, "b", None))
    assert both(pm, log, **ARGS) == (None, ["b:m", "a:m"])


def test_a_plugin_registered_or_unregistered_later_is_seen() -> None:
    log = Calls()
    pm = manager(plugin(log, "a", "from-a"))
    call = FirstAnswer(pm.hook.resolve)
    assert call(**ARGS) == "from-a"
    late = plugin(log, "late", "from-late")
    pm.register(late)
    assert call(**ARGS) == "from-late"
    pm.unregister(late)
    assert call(**ARGS) == "from-a"


def test_a_wrapper_is_left_to_pluggy() -> None:
    log = Calls()

    class Wrapper:
        @impl(wrapper=True)
        def resolve(self) -> Generator[None, str | None, str | None]:
            answer = yield
            return f"wrapped({answer})"

    pm = manager(plugin(log, "a", "from-a"), Wrapper())
    assert both(pm, log, **ARGS) == ("wrapped(from-a)", ["a:m"])


def test_an_implementations_error_reaches_the_caller() -> None:
    class Broken:
        @impl
        def resolve(self, model: str) -> str:
            raise RuntimeError(f"no {model}")

    pm = manager(Broken())
    with pytest.raises(RuntimeError, match="no m"):
        FirstAnswer(pm.hook.resolve)(**ARGS)
