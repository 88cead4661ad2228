"""What the method units' overlays share (`MethodUnit.overlays`; resolved by `config.overlays.resolve`).

An overlay reads the config it is applied to (the base with the overlays before it) and returns
a nested dict of the values to set (merged key by key, as a preset's `base:`). Values the
reference defines relative to the detector are scaled from the base; the others are the
reference's. An overlay that cannot apply to a base raises `MsdetrError` naming both.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from msdetr.config.schema import Config
from msdetr.errors import MsdetrError

OverlayFunction = Callable[[Config, str], dict[str, Any]]


@dataclass(frozen=True)
class Overlay:
    """A method as a config overlay: `BASE+name`.

    apply: (config so far, where) -> the values to set. label: for the variant's description.
    rank: overlays apply in increasing rank whatever the order written. aliases: other spellings.
    excludes: method name -> why the two cannot go together (completes "methods 'a' and 'b' ...").
    pins: dotted keys (e.g. "supervision.loss_weights.encoder") whose values this overlay sets and
        the overlays applied after it leave as they are (a `--set` still wins).
    """

    name: str
    apply: OverlayFunction
    label: str
    rank: float
    aliases: tuple[str, ...] = ()
    excludes: tuple[tuple[str, str], ...] = ()
    pins: tuple[str, ...] = ()


def stream_weights(cfg: Config, stream: str, boxes_only: bool = True) -> dict[str, float]:
    """A stream's loss weights as a dict (cls, bbox, giou; plus mask, dice unless boxes_only)."""
    w = getattr(cfg.supervision.loss_weights, stream)
    names = ("cls", "bbox", "giou") if boxes_only else ("cls", "bbox", "giou", "mask", "dice")
    return {n: float(getattr(w, n)) for n in names}


def refuse(where: str, method: str, reason: str) -> MsdetrError:
    return MsdetrError(f"{where}: method '{method}' {reason}")
