"""`BASE+METHOD+...` -> a config: load the base (a preset name or a YAML file), apply each method's
overlay (`msdetr.config.overlays.methods`) in a fixed order, then the `--set` overrides.

The overrides are applied to the base before the overlays too, so an overlay scales from the
overridden base (`tiny+hybrid --set model.num_queries=30` gets 150 hybrid queries) while an
override of a method's own value still wins (`--set model.hybrid.num_queries=100`).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from msdetr.config.dataclass_io import from_dict
from msdetr.config.overlays.methods import ALIASES, EXCLUSIVE, METHOD_ORDER, METHODS
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


def variant_dict(spec: str, overrides: Iterable[str] = ()) -> dict[str, Any]:
    """The merged (not yet typed) config dict of `BASE+METHOD...` plus overrides."""
    from msdetr.config import loader  # the loader imports this module lazily

    base, methods = split_variant(spec)
    merged = loader._load_with_bases(loader.resolve_source(base), chain=[])
    parsed = [loader.parse_override(o) for o in overrides]
    for override in parsed:
        merged = loader.deep_merge(merged, override)
    descriptions = []
    for method in methods:
        overlay, label = METHODS[method]
        current = from_dict(Config, merged, where=spec)
        merged = loader.deep_merge(merged, overlay(current, spec))
        descriptions.append(label)
    merged["name"] = canonical_name(spec)
    base_description = str(merged.get("description", "")).strip()
    merged["description"] = " + ".join([base_description or base, *descriptions])
    for override in parsed:
        merged = loader.deep_merge(merged, override)
    return merged


def load_variant(spec: str, overrides: Iterable[str] = ()) -> Config:
    """The checked `Config` of `BASE+METHOD...` plus overrides."""
    from msdetr.config import loader

    cfg = from_dict(Config, variant_dict(spec, overrides), where=spec)
    loader.validate_config(cfg, where=spec)
    return cfg
