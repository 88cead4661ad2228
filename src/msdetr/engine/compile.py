"""`train.compile`: torch.compile of the model and of the criterion's loss arithmetic.

The model is compiled whole (graph breaks where it needs host values, e.g. image sizes);
the criterion's assignments run on the host (Hungarian) or sync for random draws (top-K),
so only its dense part, `losses.batched.dense_group_losses` (every task: focal or IoU-aware
classification, prime-sample weights; a mask head's point-sampled terms stay eager), is compiled, with dynamic
shapes (the number of matched pairs changes every step). The uncompiled modules stay the
ones that are saved, evaluated and averaged (EMA): compiling wraps, it does not rename
parameters.

backend: "inductor" (torch's default, generates C++/OpenMP code on the CPU and Triton
kernels on CUDA; needs a C++ compiler on the CPU), "aot_eager" (traced and run by the eager
kernels: no compiler needed, what the CPU test uses), or any other registered backend.
"""

from __future__ import annotations

import torch
from torch import nn

from msdetr.errors import MsdetrError
from msdetr.losses.batched import dense_group_losses
from msdetr.losses.criterion import Criterion


def compile_model(model: nn.Module, backend: str = "inductor") -> nn.Module:
    """The compiled model (an `OptimizedModule` sharing `model`'s parameters)."""
    _check_backend(backend)
    return torch.compile(model, backend=backend)


def compile_criterion(criterion: Criterion, backend: str = "inductor") -> Criterion:
    """`criterion` with its loss arithmetic compiled (in place; returned for convenience)."""
    _check_backend(backend)
    criterion.dense_losses = torch.compile(dense_group_losses, backend=backend, dynamic=True)
    return criterion


def _check_backend(backend: str) -> None:
    available = torch._dynamo.list_backends(exclude_tags=())
    if backend not in available:
        raise MsdetrError(
            f"train.compile_backend: unknown torch.compile backend {backend!r}; use one of {sorted(available)}"
        )
