"""Matching and loss math runs in float32, even inside an autocast region."""

from __future__ import annotations

import contextlib

import torch


def autocast_disabled(device: torch.device) -> contextlib.AbstractContextManager:
    """A context that switches autocast off for `device` (a no-op where autocast does not exist).

    Where autocast is already off this is a plain null context: entering and leaving an
    autocast region has a fixed cost that shows in the assigners' CPU timings.
    """
    try:
        if not torch.is_autocast_enabled(device.type):
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, enabled=False)
    except RuntimeError:  # device type without autocast support
        return contextlib.nullcontext()
