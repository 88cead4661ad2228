"""The one import stubber of the fixture generators (`tests/make_*_fixture.py`, not run in CI).

The reference repositories import things their tested parts never run (the compiled
deformable-attention extension, Swin / timm backbones, wandb, detectron2's helpers) and call
`.cuda()`. Before importing a reference, a generator calls `stub_reference_imports` with the
modules to stand in (and `cuda_on_cpu=True` where the reference moves tensors to the GPU).
"""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

import torch

# detrex.utils' distributed helpers as a single process answers them (the real ones import detectron2)
SINGLE_PROCESS = {"get_world_size": lambda: 1, "is_dist_avail_and_initialized": lambda: False}
# the compiled deformable-attention extension: imported at module level, never called once replaced
DEFORM_ATTN_EXTENSION = {"MultiScaleDeformableAttention": {}}
# timm, imported by the DINO / DN-DETR backbone modules (ConvNeXt / Swin) for names never run
TIMM = {"timm": {}, "timm.models": {},
        "timm.models.layers": {"trunc_normal_": torch.nn.Identity, "DropPath": torch.nn.Identity,
                               "to_2tuple": torch.nn.Identity}}


def stub_reference_imports(modules: dict[str, dict[str, Any]], cuda_on_cpu: bool = False) -> None:
    """Stand in `modules` (dotted name -> attributes) in `sys.modules`.

    A name not imported yet becomes an empty module; the attributes are then set on it (also on
    a module already there, e.g. a real timm). A stand-in whose parent package is stubbed too
    becomes that package's attribute (`detrex.layers` -> `detrex.layers`); other parents are left
    alone (`models.backbone` inside the reference's real `models` package).
    cuda_on_cpu: `Tensor.cuda()` returns the tensor and `Tensor.to("cuda...")` goes to the CPU."""
    for name, attributes in modules.items():
        module = sys.modules.setdefault(name, types.ModuleType(name))
        for key, value in attributes.items():
            setattr(module, key, value)
    for name in modules:
        parent, _, child = name.rpartition(".")
        if parent in modules:
            setattr(sys.modules[parent], child, sys.modules[name])
    if cuda_on_cpu:
        _run_cuda_on_cpu()


def _run_cuda_on_cpu() -> None:
    torch.Tensor.cuda = lambda self, *args, **kwargs: self
    original_to = torch.Tensor.to

    def to(self, *args, **kwargs):
        args = tuple("cpu" if isinstance(a, str) and a.startswith("cuda") else a for a in args)
        if isinstance(kwargs.get("device"), str) and kwargs["device"].startswith("cuda"):
            kwargs["device"] = "cpu"
        return original_to(self, *args, **kwargs)

    torch.Tensor.to = to


def import_from(root: Path, names: list[str]) -> list[types.ModuleType]:
    """Import modules of one reference repository at `root` (its `util` / `models` / `datasets`
    packages replace those of a reference imported before)."""
    for name in list(sys.modules):
        if name.split(".")[0] in ("util", "models", "datasets"):
            del sys.modules[name]
    sys.path.insert(0, str(root))
    try:
        return [__import__(name, fromlist=["_"]) for name in names]
    finally:
        sys.path.remove(str(root))


def pytorch_sampling_function(core):
    """A stand-in for the references' compiled `MSDeformAttnFunction`: `apply` calls their own
    pure-PyTorch `ms_deform_attn_core_pytorch` (`core`), which takes no level start index or im2col step."""

    class PurePyTorch:
        @staticmethod
        def apply(value, shapes, level_start_index, locations, weights, im2col_step):
            return core(value, shapes, locations, weights)

    return PurePyTorch
