"""`--init-backbone`: start a new run with a trained backbone and everything else freshly initialized.

The source is one of our checkpoints (or an official one: its `backbone.*` weights), or a
torchvision ResNet state dict (`conv1.weight`, `layer1.0.bn1.running_mean`, ...; the
classifier `fc.*` is ignored), optionally wrapped in `{"state_dict": ...}` or `{"model": ...}`.
Only the backbone's tensors change: neck, encoder, decoder, queries and heads keep the new
model's initialization. The copy is strict: every backbone tensor must be in the file with
the same shape, and the file must hold no other backbone tensors (a ResNet-34 file does not
fit a ResNet-18), so a run never starts from a half-loaded or mismatched backbone. BatchNorm
statistics come along; `num_batches_tracked` counters (absent from frozen BatchNorm) are skipped.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

from msdetr.engine.init_weights import InitReport, _short
from msdetr.errors import MsdetrError
from msdetr.model_io import FORMAT, load_model_file

PREFIX = "backbone.body."  # our state-dict prefix of the torchvision ResNet trunk


def read_backbone_state(path: str | Path) -> dict[str, Tensor]:
    """The backbone tensors of checkpoint `path` under torchvision's ResNet names."""
    path = Path(path)
    if not path.is_file():
        raise MsdetrError(f"{path}: backbone checkpoint not found")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # noqa: BLE001 - any unreadable file
        raise MsdetrError(f"{path}: cannot read as a PyTorch checkpoint ({type(err).__name__}: {err})") from None
    if isinstance(raw, Mapping) and (raw.get("format") == FORMAT or ("model" in raw and "args" in raw)):
        state = load_model_file(path).state_dict  # ours or official, in our names
        body = {k.removeprefix(PREFIX): v for k, v in state.items() if k.startswith(PREFIX)}
        if not body:
            raise MsdetrError(f"{path}: this detector checkpoint has no {PREFIX}* weights")
        return body
    for key in ("state_dict", "model"):
        if isinstance(raw, Mapping) and isinstance(raw.get(key), Mapping):
            raw = raw[key]
    if not isinstance(raw, Mapping) or not all(isinstance(v, Tensor) for v in raw.values()):
        raise MsdetrError(
            f"{path}: neither an msdetr checkpoint nor a state dict of tensors; pass one of our "
            f"checkpoints (best.pt / last.pt) or a torchvision ResNet state_dict() file"
        )
    state = {k.removeprefix("module.").removeprefix(PREFIX): v for k, v in raw.items()}
    return {k: v for k, v in state.items() if not k.startswith("fc.")}


@torch.no_grad()
def init_backbone_from_checkpoint(model: nn.Module, path: str | Path) -> InitReport:
    """Copy the backbone weights of `path` into `model.backbone` (in place); nothing else changes.

    Raises MsdetrError when a backbone tensor is missing from the file or has another shape.
    """
    source = read_backbone_state(path)
    target = {k.removeprefix(PREFIX): v for k, v in model.state_dict().items() if k.startswith(PREFIX)}
    if not target:
        raise MsdetrError("--init-backbone: the model has no backbone.body.* weights")
    report = InitReport()
    for name, value in target.items():
        if name not in source:
            if not name.endswith("num_batches_tracked"):
                report.missing.append(PREFIX + name)
        elif tuple(source[name].shape) != tuple(value.shape):
            report.shape_mismatch.append(PREFIX + name)
    report.unexpected = sorted(k for k in source if k not in target and not k.endswith("num_batches_tracked"))
    if report.missing or report.shape_mismatch or report.unexpected:
        raise MsdetrError(
            f"{path}: does not fit the model's backbone ({len(report.missing)} tensors missing, e.g. "
            f"{_short(report.missing, 2) or '-'}; {len(report.shape_mismatch)} of another shape, e.g. "
            f"{_short(report.shape_mismatch, 2) or '-'}; {len(report.unexpected)} the model does not have, "
            f"e.g. {_short(report.unexpected, 2) or '-'}); is it the same ResNet as model.backbone.name?"
        )
    for name, value in target.items():
        if name in source:
            value.copy_(source[name].to(value.dtype))
            report.loaded.append(PREFIX + name)
    return report
