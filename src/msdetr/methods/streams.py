"""Stream names: the detector's output keys, the loss-weight groups and the metric prefixes
(`one_to_one.layer2.cls`). The built-in streams are declared here; a method unit declares the
streams it adds (`StreamSpec`, by `msdetr.methods.registry.register`), and the per-stream config
sections (`supervision.loss_weights.<stream>`, `supervision.classification_loss.<stream>`) accept
every declared stream. Imports nothing of the package at import time, so the config may read it."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field

ONE_TO_ONE = "one_to_one"
ONE_TO_MANY = "one_to_many"
ENCODER = "encoder"
HYBRID = "hybrid"
GROUP = "group"
DENOISING = "denoising"
DAC = "dac"

BUILTIN_STREAMS = (ONE_TO_ONE, ONE_TO_MANY, ENCODER, HYBRID, GROUP, DENOISING, DAC)


@dataclass(frozen=True)
class StreamSpec:
    """A prediction stream: its name, default loss weights (the `LossWeights` fields that differ
    from their defaults) and default classification loss ("focal" or "iou_aware")."""

    name: str
    loss_weights: dict[str, float] = field(default_factory=dict)
    classification_loss: str = "focal"


_DECLARED: dict[str, StreamSpec] = {name: StreamSpec(name) for name in BUILTIN_STREAMS}


def declare(spec: StreamSpec) -> None:
    """Make `spec` a known stream (a unit's own; a built-in name keeps its defaults unless restated)."""
    _DECLARED[spec.name] = spec


def forget(name: str) -> None:
    """Drop a declared stream that is not built in."""
    if name not in BUILTIN_STREAMS:
        _DECLARED.pop(name, None)


def declared() -> dict[str, StreamSpec]:
    """Every known stream by name, built-in ones first (the built-in units' streams included)."""
    importlib.import_module("msdetr.methods.registry")  # registers the built-in units (once)
    return dict(_DECLARED)
