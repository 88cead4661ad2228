"""Mixed precision: the autocast region around the forward pass and the fp16 gradient scaler.

Matching, losses and deformable-attention sampling switch autocast off themselves and run
in float32 (see `msdetr.supervision.precision` and `msdetr.ops.ms_deform_attn`).
"""

from __future__ import annotations

import torch

from msdetr.autocast import autocast  # noqa: F401  (the forward's autocast region)
from msdetr.errors import MsdetrError


def check_amp(amp: str, device: torch.device) -> None:
    """Raise a clear error for precision modes the device cannot run."""
    if amp == "none":
        return
    if amp == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise MsdetrError("train.amp: this GPU has no bfloat16 support; use train.amp=fp16")
    if device.type == "mps" and amp == "bf16":
        raise MsdetrError("train.amp: bf16 autocast is not supported on mps; use fp16 or none")


def make_scaler(amp: str, device: torch.device) -> torch.amp.GradScaler:
    """A gradient scaler, enabled only for fp16 (bf16 has float32's range)."""
    return torch.amp.GradScaler(device.type, enabled=amp == "fp16")
