"""Choosing the device a process trains or evaluates on."""

from __future__ import annotations

import torch

from msdetr.errors import MsdetrError


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """ "auto" -> cuda (this process's local GPU) when available, else mps, else cpu.

    "cuda" under torchrun means cuda:<LOCAL_RANK>. Unavailable devices are a clear error.
    """
    name = (name or "auto").strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            name = "cuda"
        elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            name = "mps"
        else:
            name = "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise MsdetrError(f"device: unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise MsdetrError("device: cuda requested but no CUDA GPU is available; use --device cpu")
        index = device.index if device.index is not None else local_rank
        if index >= torch.cuda.device_count():
            raise MsdetrError(f"device: cuda:{index} requested but only {torch.cuda.device_count()} GPU(s)")
        device = torch.device("cuda", index)
        torch.cuda.set_device(device)
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise MsdetrError("device: mps requested but not available; use --device cpu")
    return device
