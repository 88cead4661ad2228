"""The autocast region of a forward pass: bf16 / fp16 autocast for `amp`, a no-op for "none".

Used by training (`msdetr.engine`) and evaluation alike; the gradient scaler and the device
checks live in `msdetr.engine.amp`.
"""

from __future__ import annotations

import contextlib

import torch

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(amp: str, device: torch.device) -> contextlib.AbstractContextManager:
    """Autocast to bf16/fp16 for `amp`, a no-op context for "none"."""
    if amp == "none":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=AMP_DTYPES[amp])
