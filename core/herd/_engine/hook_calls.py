"""Calling a ``firstresult`` hook that runs on every request, without pluggy's machinery.

pluggy's call checks the arguments against the spec, builds each implementation's
argument list from a dict and wraps the loop in its wrapper protocol: about 200 Python
bytecodes a call, for ``herd_resolve_model`` (one implementation, the alias table) about
2% of all the router's work for a streamed chat. :class:`FirstAnswer` makes the same
calls in the same order (pluggy's: last registered first, ``tryfirst``/``trylast``
honoured) and returns the first answer that is not None, as pluggy does for a
``firstresult`` hook.

It asks the hook for its implementations on every call (one list copy), so a plugin
registered or unregistered later is seen at once. Whenever an implementation is a wrapper
or takes keyword-only arguments, the hook itself is called instead.
"""

from __future__ import annotations

from typing import Any

import pluggy

__all__ = ["FirstAnswer"]


class FirstAnswer:
    """A ``firstresult`` hook's call, made directly: ``FirstAnswer(pm.hook.x)(a=1, b=2)``."""

    __slots__ = ("_calls", "_hook", "_impls")

    def __init__(self, hook: pluggy.HookCaller) -> None:
        self._hook = hook
        self._impls: list[Any] | None = None
        # (function, its argument names), in calling order; None: leave it to pluggy
        self._calls: list[tuple[Any, tuple[str, ...]]] | None = None

    def __call__(self, **kwargs: Any) -> Any:
        impls = self._hook.get_hookimpls()
        if impls != self._impls:
            self._learn(impls)
        calls = self._calls
        if calls is None:
            return self._hook(**kwargs)
        for function, names in calls:
            answer = function(*map(kwargs.__getitem__, names))
            if answer is not None:
                return answer
        return None

    def _learn(self, impls: list[Any]) -> None:
        self._impls = impls
        plain = all(
            not (impl.hookwrapper or impl.wrapper or getattr(impl, "kwargnames", ()))
            for impl in impls
        )
        # pluggy calls the list from its end (what was registered last, first)
        self._calls = (
            [(impl.function, tuple(impl.argnames)) for impl in reversed(impls)] if plain else None
        )
