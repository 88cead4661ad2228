"""`--init-weights`: start a new run from any checkpoint (ours or the official format).

Every parameter whose name and shape fit is copied. Parameters whose shape differs (the
class heads, when the number of classes differs) keep the new model's initialization and
are reported, as are names only one side has.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from msdetr.errors import MsdetrError
from msdetr.model_io import load_model_file


@dataclass
class InitReport:
    """What `init_from_checkpoint` did, by parameter name."""

    loaded: list[str] = field(default_factory=list)
    shape_mismatch: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = [f"loaded {len(self.loaded)} tensors"]
        if self.shape_mismatch:
            parts.append(
                f"re-initialized {len(self.shape_mismatch)} with a different shape ({_short(self.shape_mismatch)})"
            )
        if self.missing:
            parts.append(f"{len(self.missing)} not in the checkpoint, left at init ({_short(self.missing)})")
        if self.unexpected:
            parts.append(f"ignored {len(self.unexpected)} the model does not have ({_short(self.unexpected)})")
        return "; ".join(parts)


def _short(names: list[str], limit: int = 4) -> str:
    more = f", ... {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


@torch.no_grad()
def init_from_checkpoint(model: nn.Module, path: str | Path) -> InitReport:
    """Copy the fitting weights of checkpoint `path` into `model` (in place)."""
    source = load_model_file(path).state_dict
    target = model.state_dict()
    report = InitReport()
    for name, value in target.items():
        if name not in source:
            report.missing.append(name)
        elif tuple(source[name].shape) != tuple(value.shape):
            report.shape_mismatch.append(name)
        else:
            value.copy_(source[name].to(value.dtype))
            report.loaded.append(name)
    report.unexpected = sorted(set(source) - set(target))
    if not report.loaded:
        raise MsdetrError(
            f"{path}: no tensor of this checkpoint fits the model (e.g. "
            f"{_short(sorted(source), 2)}); is it a detector checkpoint?"
        )
    return report
