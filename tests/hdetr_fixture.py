"""The H-DETR conformance fixture: loading, and the seeded backbone weights it is made with.

`tests/make_hdetr_fixture.py` runs the H-DETR reference code (HDETR/H-Deformable-DETR) and
writes `tests/fixtures/hdetr_fixture.pt`; the environment variable MSDETR_HDETR_FIXTURE
points the tests at another file made the same way. The reference hard-codes ResNet-50
channel counts, so the fixture keeps its size small by not storing the (frozen) ResNet-50:
both sides generate it from `seeded_backbone_state(shapes, seed)`.

Gradients are stored as float16 with one float32 scale per tensor (`grad = half * scale`):
a relative rounding error of at most 2**-12 per element, a quarter of the 1e-3 tolerance.
"""

from __future__ import annotations

import functools
import math
import os
from pathlib import Path

import pytest
import torch
from torch import Tensor

DEFAULT_FIXTURE = Path(__file__).resolve().parent / "fixtures" / "hdetr_fixture.pt"


def fixture_path() -> Path:
    return Path(os.environ.get("MSDETR_HDETR_FIXTURE", DEFAULT_FIXTURE))


@functools.lru_cache(maxsize=1)
def _load(path: str) -> dict:
    return torch.load(path, weights_only=False, map_location="cpu")


def load_fixture() -> dict:
    """The fixture dict, or skip the calling test when the file is absent."""
    path = fixture_path()
    if not path.is_file():
        pytest.skip(f"H-DETR conformance fixture not found at {path} (set MSDETR_HDETR_FIXTURE)")
    return _load(str(path))


def seeded_backbone_state(shapes: dict[str, tuple[int, ...]], seed: int) -> dict[str, Tensor]:
    """Float16-rounded (returned as float32) ResNet weights for `shapes` (name -> shape, in the
    given order), drawn from one CPU generator: convolutions N(0, 2 / fan_in), frozen
    BatchNorm weight 1 + 0.1 N, bias 0.1 N, running mean 0.1 N, running var 1 + 0.1 U."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for name, shape in shapes.items():
        leaf = name.rsplit(".", 1)[-1]
        if len(shape) == 4:
            fan_in = shape[1] * shape[2] * shape[3]
            value = torch.randn(shape, generator=g) * math.sqrt(2.0 / fan_in)
        elif leaf == "weight":
            value = 1 + 0.1 * torch.randn(shape, generator=g)
        elif leaf == "running_var":
            value = 1 + 0.1 * torch.rand(shape, generator=g)
        else:
            value = 0.1 * torch.randn(shape, generator=g)
        out[name] = value.half().float()
    return out


def seeded_detector_state(shapes: dict[str, tuple[int, ...]], seed: int) -> dict[str, Tensor]:
    """Float16-rounded (returned as float32) weights for the non-backbone parameters of an
    official-format Deformable-DETR model (name -> shape, in the given order), from one CPU
    generator: matrices N(0, 1 / fan_in) (query and level embeddings N(0, 1)), 1-D weights
    (LayerNorm / GroupNorm) 1 + 0.1 N, biases 0.1 N, class biases -4.6 + 0.1 N (prior 0.01),
    sampling-offset biases U(-2, 2) (off the pixel lattice)."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for name, shape in shapes.items():
        if name.endswith(("query_embed.weight", "level_embed")):
            value = torch.randn(shape, generator=g)
        elif len(shape) >= 2:
            fan_in = math.prod(shape[1:])
            value = torch.randn(shape, generator=g) / math.sqrt(fan_in)
        elif name.endswith("sampling_offsets.bias"):
            value = 4 * torch.rand(shape, generator=g) - 2
        elif name.startswith("class_embed.") and name.endswith(".bias"):
            value = -4.6 + 0.1 * torch.randn(shape, generator=g)
        elif name.endswith(".weight"):
            value = 1 + 0.1 * torch.randn(shape, generator=g)
        else:
            value = 0.1 * torch.randn(shape, generator=g)
        out[name] = value.half().float()
    return out


def fixture_state_dict(entry: dict, backbone_seed: int) -> dict[str, Tensor]:
    """The official-format state dict a fixture config was run with (twin decoder heads included)."""
    state = seeded_detector_state(entry["shapes"], entry["seed"])
    state.update(seeded_backbone_state(entry["backbone_shapes"], backbone_seed))
    for key in entry["twins"]:
        state[key] = state[key.removeprefix("transformer.decoder.")]
    return state


def pack_gradient(grad: Tensor) -> tuple[Tensor, float]:
    """(float16 tensor, scale) with grad ~= half * scale."""
    scale = float(grad.abs().max()) or 1.0
    return (grad / scale).half(), scale


def unpack_gradient(packed: tuple[Tensor, float]) -> Tensor:
    half, scale = packed
    return half.float() * scale
