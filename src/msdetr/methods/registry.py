"""The registered method units, in the order their strategies compose and their streams appear.

`build_model` and `build_criterion` loop over `registered()`; adding a method is one module
that defines a `MethodUnit` and calls `register(unit)` (see docs/design.md, "How to add a method").
"""

from __future__ import annotations

from torch import nn

from msdetr.config.overlay import Overlay
from msdetr.methods import align, dab, dac, denoising, detr, group, hybrid, mask, mr_detr, ms_detr, pp
from msdetr.methods.sections import declare_section, forget_section
from msdetr.methods.streams import StreamSpec, declare, declared, forget
from msdetr.methods.unit import MethodUnit

# primary strategies compose in this order (Align replaces DETR's, MS-DETR then Group DETR wrap it);
# the other strategies follow, in this order
_UNITS: list[MethodUnit] = []


def register(unit: MethodUnit) -> MethodUnit:
    """Add `unit` after the built-in ones (a unit of the same name is replaced); its streams
    become known to the per-stream config sections."""
    unregister(unit.name)
    _UNITS.append(unit)
    for spec in unit.streams:
        declare(spec)
    for owner, section in (("model", unit.model_section), ("supervision", unit.supervision_section)):
        if section is not None:
            declare_section(owner, unit.name, section)
    return unit


def unregister(name: str) -> None:
    """Remove the unit called `name` (nothing when there is none) and forget its own streams."""
    for unit in [unit for unit in _UNITS if unit.name == name]:
        for spec in unit.streams:
            forget(spec.name)
        for owner in ("model", "supervision"):
            forget_section(owner, unit.name)
    _UNITS[:] = [unit for unit in _UNITS if unit.name != name]


for _unit in (detr.UNIT, align.UNIT, ms_detr.UNIT, hybrid.UNIT, group.UNIT, detr.ENCODER_UNIT, denoising.UNIT,
              dac.UNIT, mr_detr.UNIT, pp.UNIT, dab.UNIT, mask.UNIT):
    register(_unit)


def registered() -> list[MethodUnit]:
    return list(_UNITS)


def streams() -> dict[str, StreamSpec]:
    """Every declared stream by name (built-in and registered units')."""
    return declared()


def build_query_group_providers(cfg) -> nn.ModuleList:
    """The query-group providers a `ModelConfig` asks for, in stream order."""
    made = (unit.provider(cfg) for unit in _UNITS if unit.provider is not None)
    return nn.ModuleList(provider for provider in made if provider is not None)


def build_branches(cfg) -> nn.ModuleList:
    """The decoder branches a `ModelConfig` asks for."""
    made = (unit.branch(cfg) for unit in _UNITS if unit.branch is not None)
    return nn.ModuleList(branch for branch in made if branch is not None)


def overlays() -> list[Overlay]:
    """Every registered unit's overlays, in the order they apply (`Overlay.rank`)."""
    return sorted((overlay for unit in _UNITS for overlay in unit.overlays), key=lambda overlay: overlay.rank)
