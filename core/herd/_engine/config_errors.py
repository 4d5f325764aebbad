"""Turning msgspec validation errors into messages that name the key, its line and meaning."""

from __future__ import annotations

import re
from typing import Any

import msgspec
import yaml

__all__ = [
    "error_keys",
    "explain_validation_error",
    "field_type_at",
    "line_of",
    "setting_env_names",
]


def explain_validation_error(
    message: str, source: str, text: str, root: type[msgspec.Struct]
) -> str:
    """Rewrite a msgspec validation message for the person who wrote the file.

    Args:
        message: msgspec's message, e.g. ``Object contains unknown field `x` - at `$.routing```.
        source: The file's name, for the message.
        text: The file's text, to find the key's line.
        root: The top-level settings struct.

    Returns:
        ``config error in FILE, line N: a.b: what is wrong -- `b` is: its meaning``.
    """
    return _explain(message, source, text, root)


def error_keys(message: str) -> list[str]:
    """The key path a msgspec message points at: ``$.nodes[0].url`` -> nodes, [0], url."""
    _, _, where = message.partition(" - at `")
    path = where.rstrip("`") if where else "$"
    return re.findall(r"\[\d+\]|[^.\[\]]+", path.removeprefix("$"))


def field_type_at(root: Any, names: list[str]) -> tuple[bool, Any]:
    """Whether ``names`` (lower-case keys) name a setting, and that setting's type.

    Inside a free-form map (``routing.signals``, ``plugins.options``) any deeper key
    counts as a setting, of unknown type (None); a list (``nodes``) is set whole.
    """
    current: Any = root
    for name in names:
        if getattr(current, "__origin__", None) is dict:
            return True, None
        if not (isinstance(current, type) and issubclass(current, msgspec.Struct)):
            return False, None
        types = {f.name: f.type for f in msgspec.structs.fields(current)}
        if name not in types:
            return False, None
        current = _unwrap(types[name])
    return True, current


def setting_env_names(root: Any, prefix: str = "HERD_") -> list[str]:
    """Every environment variable that names a setting of ``root``: ``HERD_PORT``,
    ``HERD_ROUTING``, ``HERD_ROUTING__MAX_RETRIES``, ... (not the keys inside free-form
    maps, which are anyone's)."""
    names: list[str] = []
    if not (isinstance(root, type) and issubclass(root, msgspec.Struct)):
        return names
    for field in msgspec.structs.fields(root):
        name = prefix + field.name.upper()
        names.append(name)
        names += setting_env_names(_unwrap(field.type), name + "__")
    return names


def _unwrap(tp: Any) -> Any:
    while hasattr(tp, "__metadata__"):
        tp = tp.__origin__
    return tp


def _explain(message: str, source: str, text: str, root: Any) -> str:
    """Turn a msgspec validation message into one that names the key, line and meaning."""
    detail, _, _where = message.partition(" - at `")
    keys = error_keys(message)
    if detail.startswith("Object contains unknown field"):
        bad = detail.split("`")[1]
        keys.append(bad)
        owner = _struct_at(root, keys[:-1])
        known = ", ".join(owner.__struct_fields__) if owner else ""
        what = f"unknown key `{bad}`" + (f" (known keys here: {known})" if known else "")
    elif detail.startswith("Object missing required field"):
        keys.append(detail.split("`")[1])  # name the missing key, and say what it means
        what = "required, but missing"
    elif detail.startswith("Invalid enum value") and _choices(root, keys):
        value = detail.removeprefix("Invalid enum value").strip()
        what = f"{value} is not one of {', '.join(_choices(root, keys))}"
    else:
        what = detail[0].lower() + detail[1:] if detail else "invalid value"
    dotted = "".join(k if k.startswith("[") else f".{k}" for k in keys).lstrip(".") or "(top level)"
    line = line_of(text, keys)
    meaning = _meaning(root, keys)
    location = f"{source}, line {line}" if line else source
    named = [k for k in keys if not k.startswith("[")]  # `nodes`, not `[0]`
    suffix = f" -- `{named[-1] if named else dotted}` is: {meaning}" if meaning else ""
    return f"config error in {location}: {dotted}: {what}{suffix}"


def _choices(root: Any, keys: list[str]) -> list[str]:
    """The values a ``Literal`` setting allows, or [] for any other type."""
    owner = _struct_at(root, keys[:-1])
    tp = _field_types(owner).get(keys[-1]) if owner and keys else None
    return [str(arg) for arg in getattr(tp, "__args__", ())] if tp is not None else []


def _struct_at(root: Any, keys: list[str]) -> type[msgspec.Struct] | None:
    current: Any = root
    for key in keys:
        if key.startswith("["):
            continue
        info = _field_types(current).get(key)
        if info is None:
            return None
        current = info
    return current if isinstance(current, type) and issubclass(current, msgspec.Struct) else None


def _field_types(struct: Any) -> dict[str, Any]:
    if not (isinstance(struct, type) and issubclass(struct, msgspec.Struct)):
        return {}
    out: dict[str, Any] = {}
    for field in msgspec.structs.fields(struct):
        tp = field.type
        while hasattr(tp, "__metadata__"):
            tp = tp.__origin__
        args = getattr(tp, "__args__", ())
        if getattr(tp, "__origin__", None) is list and args:
            tp = args[0]
        out[field.name] = tp
    return out


def _meaning(root: Any, keys: list[str]) -> str:
    names = [k for k in keys if not k.startswith("[")]
    if not names:
        return ""
    owner = _struct_at(root, names[:-1]) if len(names) > 1 else root
    if owner is None:
        return ""
    for field in msgspec.structs.fields(owner):
        if field.name == names[-1]:
            meta = getattr(field.type, "__metadata__", ())
            for m in meta:
                if isinstance(m, msgspec.Meta) and m.description:
                    return m.description
    return ""


def line_of(text: str, keys: list[str]) -> int | None:
    """Find the line of a key path in the YAML text (1-based), if the file has it."""
    if not text:
        return None
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return None
    line = None
    for key in keys:
        if node is None:
            break
        if key.startswith("[") and isinstance(node, yaml.SequenceNode):
            index = int(key.strip("[]"))
            node = node.value[index] if index < len(node.value) else None
            if node is not None:
                line = node.start_mark.line + 1
        elif isinstance(node, yaml.MappingNode):
            match = next((kv for kv in node.value if kv[0].value == key), None)
            if match is None:
                break
            line = match[0].start_mark.line + 1
            node = match[1]
        else:
            break
    return line
