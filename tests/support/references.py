"""The reference (conformance) fixtures: the one loader, and what the conformance tests share.

Every fixture is a `torch.save`d dict, found at its environment variable or its default path
(see `REFERENCES`); `load_reference(name)` loads it once per session onto the CPU and skips the
calling test with the reason when the file is absent. The MS-DETR fixture is the official one
(../shared/conformance/README.md); the others are made by `tests/make_<name>_fixture.py`.

H-DETR: the reference hard-codes ResNet-50 channel counts, so the fixture keeps its size small by
not storing the (frozen) ResNet-50: both sides generate it from `seeded_backbone_state(shapes, seed)`.
Gradients are stored as float16 with one float32 scale per tensor (`grad = half * scale`): a
relative rounding error of at most 2**-12 per element, a quarter of the 1e-3 tolerance.
"""

from __future__ import annotations

import functools
import math
import os
from pathlib import Path

import pytest
import torch
from torch import Tensor

from msdetr.modeling.outputs import ONE_TO_MANY, ONE_TO_ONE, DetectorOutput, EncoderPredictions, StreamPredictions

REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURES = REPO_ROOT / "tests" / "fixtures"

REFERENCES: dict[str, tuple[str, Path, str]] = {
    # name: (environment variable, default path, where it comes from)
    "official": ("MSDETR_OFFICIAL_FIXTURE", REPO_ROOT.parent / "shared" / "conformance" / "official_msdetr_fixture.pt",
                 "../shared/conformance/README.md"),
    "hdetr": ("MSDETR_HDETR_FIXTURE", FIXTURES / "hdetr_fixture.pt", "tests/make_hdetr_fixture.py"),
    "dab": ("MSDETR_DAB_FIXTURE", FIXTURES / "dn_dab_deformable_reference.pt", "tests/make_dab_fixture.py"),
    "denoising": ("MSDETR_DENOISING_FIXTURE", FIXTURES / "denoising_reference.pt", "tests/make_denoising_fixture.py"),
    "align": ("MSDETR_ALIGN_FIXTURE", FIXTURES / "align_detr_reference.pt", "tests/make_align_fixture.py"),
    "dac": ("MSDETR_DAC_FIXTURE", FIXTURES / "dac_detr_reference.pt", "tests/make_dac_fixture.py"),
    "group_detr": ("MSDETR_GROUP_DETR_FIXTURE", FIXTURES / "group_detr_fixture.pt",
                   "tests/make_group_detr_fixture.py"),
}


def reference_path(name: str) -> Path:
    """Where the reference fixture `name` (a key of `REFERENCES`) is read from."""
    variable, default, _ = REFERENCES[name]
    return Path(os.environ.get(variable, default))


@functools.cache
def _load(path: str) -> dict:
    return torch.load(path, weights_only=False, map_location="cpu")


def load_reference(name: str) -> dict:
    """The fixture dict `name` (loaded once, on the CPU; callers clone what they modify),
    or skip the calling test when the file is absent."""
    variable, _, origin = REFERENCES[name]
    path = reference_path(name)
    if not path.is_file():
        pytest.skip(f"{name} reference fixture not found at {path} (set {variable}; made as {origin})")
    return _load(str(path))


def _stack_stream(outputs: dict) -> StreamPredictions:
    layers = [*outputs.get("aux_outputs", []), outputs]
    return StreamPredictions(
        logits=torch.stack([layer["pred_logits"] for layer in layers]),
        boxes=torch.stack([layer["pred_boxes"] for layer in layers]),
    )


def official_outputs_to_detector_output(outputs: dict) -> DetectorOutput:
    """Official forward outputs (pred_logits / pred_boxes / aux_outputs / o2m_outputs / enc_outputs)
    as our `DetectorOutput`: streams (L, B, Q, C) with the final layer last."""
    streams = {ONE_TO_ONE: _stack_stream(outputs)}
    if "o2m_outputs" in outputs:
        streams[ONE_TO_MANY] = _stack_stream(outputs["o2m_outputs"])
    encoder = None
    if "enc_outputs" in outputs:
        enc = outputs["enc_outputs"]
        encoder = EncoderPredictions(logits=enc["pred_logits"], boxes=enc["pred_boxes"], anchors=enc["anchors"])
    return DetectorOutput(streams=streams, encoder=encoder)


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


def fixture_state_dict(entry: dict, backbone_seed: int, detector_state=None) -> dict[str, Tensor]:
    """The reference-format state dict a fixture config was run with (twin decoder heads included).

    detector_state: (shapes, seed) -> the seeded transformer weights (default: H-DETR's recipe,
    `seeded_detector_state`; a generator with its own recipe passes its function)."""
    state = (detector_state or seeded_detector_state)(entry["shapes"], entry["seed"])
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
