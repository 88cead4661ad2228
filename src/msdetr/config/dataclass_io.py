"""Strict conversion between nested config dataclasses and plain dicts."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

from msdetr.errors import MsdetrError

T = TypeVar("T")


def to_dict(obj: Any) -> Any:
    """Dataclass (nested) -> plain dict/list/scalars."""
    if hasattr(obj, "to_config"):  # a section keyed by stream name (`config.per_stream`)
        return obj.to_config(to_dict)
    if dataclasses.is_dataclass(obj):
        out = {}
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if getattr(value, "flat", False):  # method units' sections, written as keys of their owner
                out.update(value.to_flat(to_dict))
            else:
                out[f.name] = to_dict(value)
        return out
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def from_dict(cls: type[T], data: Any, where: str = "config", path: str = "") -> T:
    """Build dataclass `cls` from `data`, rejecting unknown keys and wrong types.

    where: the file (or source) named in errors; path: dotted key prefix.
    """
    if not isinstance(data, dict):
        raise MsdetrError(f"{where}: {path or 'top level'} must be a mapping, got {type(data).__name__}")
    hints = get_type_hints(cls)
    flat = {f.name: hints[f.name] for f in dataclasses.fields(cls) if getattr(hints[f.name], "flat", False)}
    names = {f.name for f in dataclasses.fields(cls)} - set(flat)
    units = {name for tp in flat.values() for name in tp.names()}  # method units' sections (`unit_sections`)
    unknown = sorted(set(data) - names - units)
    if unknown:
        key = f"{path}.{unknown[0]}" if path else unknown[0]
        raise MsdetrError(f"{where}: unknown key '{key}'; valid keys here: {', '.join(sorted(names | units))}")
    kwargs = {}
    for name, value in data.items():
        if name in names:
            key = f"{path}.{name}" if path else name
            kwargs[name] = _convert(hints[name], value, where, key)
    for field_name, tp in flat.items():
        kwargs[field_name] = tp.from_flat({k: v for k, v in data.items() if k in tp.names()}, where, path, _convert)
    return cls(**kwargs)


def _convert(tp: Any, value: Any, where: str, key: str) -> Any:
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        options = get_args(tp)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _convert(option, value, where, key)
            except MsdetrError as err:
                errors.append(str(err))
        raise MsdetrError(errors[0] if errors else f"{where}: '{key}' may not be null")
    if origin is Literal:
        allowed = get_args(tp)
        if value not in allowed:
            raise MsdetrError(f"{where}: '{key}' is {value!r}; allowed: {', '.join(map(repr, allowed))}")
        return value
    if isinstance(tp, type) and hasattr(tp, "from_config"):  # keyed by stream name (`config.per_stream`)
        return tp.from_config(value, where, key, _convert)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where, key)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise MsdetrError(f"{where}: '{key}' must be a list, got {value!r}")
        args = get_args(tp)
        item = args[0] if args else Any
        items = [_convert(item, v, where, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise MsdetrError(f"{where}: '{key}' must be a mapping, got {value!r}")
        return dict(value)
    if tp is Any or tp is typing.Any:
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise MsdetrError(f"{where}: '{key}' must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise MsdetrError(f"{where}: '{key}' must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str):  # YAML 1.1 reads "1e-3" (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise MsdetrError(f"{where}: '{key}' must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise MsdetrError(f"{where}: '{key}' must be a string, got {value!r}")
        return value
    return value
