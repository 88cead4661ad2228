"""Config sections of method units: a unit may add a section under `model` and one under
`supervision` (named after the unit, e.g. `model.mr_detr`), declared by `registry.register`
(`MethodUnit.model_section` / `supervision_section`). The config reads them through
`config.unit_sections.UnitSections`; nothing in the config schema names a unit's section.
Imports nothing of the package at import time, so the config may read it."""

from __future__ import annotations

import importlib

OWNERS = ("model", "supervision")

_DECLARED: dict[str, dict[str, type]] = {owner: {} for owner in OWNERS}


def declare_section(owner: str, name: str, cls: type) -> None:
    """Make `owner.name` a config section of dataclass `cls` (defaults: `cls()`)."""
    _DECLARED[owner][name] = cls


def forget_section(owner: str, name: str) -> None:
    _DECLARED[owner].pop(name, None)


def declared_sections(owner: str) -> dict[str, type]:
    """The sections under `owner` ("model" or "supervision") by name, the built-in units' included."""
    importlib.import_module("msdetr.methods.registry")  # registers the built-in units (once)
    return dict(_DECLARED[owner])
