"""`BASE+METHOD+...` -> a config dict: on the base's dict (the loader loads it: a preset name or a
YAML file), apply each method's
overlay (`msdetr.config.overlays.methods`) in a fixed order, then the `--set` overrides.

The overrides are applied to the base before the overlays too, so an overlay scales from the
overridden base (`tiny+hybrid --set model.num_queries=30` gets 150 hybrid queries) while an
override of a method's own value still wins (`--set model.hybrid.num_queries=100`).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from msdetr.config.dataclass_io import from_dict
from msdetr.config.overlays.methods import ALIASES, EXCLUSIVE, METHOD_ORDER, METHODS, PINS
from msdetr.config.schema import Config
from msdetr.errors import MsdetrError


def is_variant(source: str | None) -> bool:
    """True for `BASE+METHOD...` (a `+` in a source that is not an existing file)."""
    return bool(source) and "+" in source and not Path(source).expanduser().is_file()


def split_variant(spec: str) -> tuple[str, list[str]]:
    """`BASE+M1+M2` -> (BASE, [M1, M2]) with the methods checked, aliases resolved and put in the
    canonical order (`METHOD_ORDER`)."""
    base, *raw = [part.strip() for part in spec.split("+")]
    if not base:
        raise MsdetrError(f"{spec}: no base before '+'; write BASE+METHOD, e.g. tiny_ddetr+ms_detr")
    methods = []
    for name in raw:
        key = ALIASES.get(name.lower(), name.lower())
        if key not in METHODS:
            raise MsdetrError(f"{spec}: unknown method '{name}'; methods: {', '.join(METHOD_ORDER)}")
        if key in methods:
            raise MsdetrError(f"{spec}: method '{key}' given twice")
        methods.append(key)
    methods.sort(key=METHOD_ORDER.index)
    for (a, b), reason in EXCLUSIVE.items():
        if a in methods and b in methods:
            raise MsdetrError(f"{spec}: methods '{a}' and '{b}' {reason}")
    return base, methods


def canonical_name(spec: str) -> str:
    base, methods = split_variant(spec)
    return "+".join([Path(base).stem if base.endswith((".yaml", ".yml")) else base, *methods])


def apply_overlays(spec: str, base: dict[str, Any], overrides: list[dict[str, Any]]) -> dict[str, Any]:
    """The merged (not yet typed) config dict of `BASE+METHOD...`: `base` is BASE's loaded dict,
    `overrides` the parsed `--set` mappings (applied before the overlays and again after them)."""
    _, methods = split_variant(spec)
    merged = base
    for override in overrides:
        merged = deep_merge(merged, override)
    descriptions = []
    pinned: dict[str, Any] = {}  # values of earlier overlays' pinned keys (`Overlay.pins`)
    for method in methods:
        overlay, label = METHODS[method]
        current = from_dict(Config, merged, where=spec)
        merged = deep_merge(deep_merge(merged, overlay(current, spec)), pinned)
        for key in PINS[method]:
            pinned = deep_merge(pinned, _nested(key, _lookup(merged, key)))
        descriptions.append(label)
    merged["name"] = canonical_name(spec)
    base_description = str(merged.get("description", "")).strip()
    merged["description"] = " + ".join([base_description or split_variant(spec)[0], *descriptions])
    for override in overrides:
        merged = deep_merge(merged, override)
    return merged


def _lookup(data: dict[str, Any], key: str) -> Any:
    for part in key.split("."):
        data = data[part]
    return data


def _nested(key: str, value: Any) -> dict[str, Any]:
    """`a.b.c`, v -> {a: {b: {c: v}}}."""
    for part in reversed(key.split(".")):
        value = {part: value}
    return value


def deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """A copy of `base` with `update` applied: mappings merge recursively, other values replace."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out
