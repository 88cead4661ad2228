"""Every method overlay on the tiny baseline, alone and with MS-DETR, builds a detector and a
criterion that run one forward / backward with the method's prediction streams and loss terms."""

from __future__ import annotations

import pytest
import torch

from msdetr.compare.systems import system_variants
from msdetr.config.loader import load_config
from msdetr.config.overlays import METHOD_ORDER
from msdetr.losses import build_criterion
from msdetr.modeling.build import build_model

SHRINK = [
    "model.num_classes=5", "model.hidden_dim=32", "model.nheads=2", "model.dec_layers=2",
    "model.dim_feedforward=64", "model.num_queries=10", "model.num_feature_levels=2",
    "model.enc_n_points=2", "model.dec_n_points=2", "model.mask_head.mask_dim=16",
    "supervision.masks.num_points=64", "supervision.masks.matcher_points=64",
]
BASE_STREAMS = {"one_to_one", "encoder"}  # tiny_ddetr: two-stage, one-to-one only
ADDS = {"hybrid": {"hybrid"}, "group": {"group"}, "dn": {"denoising"}, "dino": {"denoising"}, "dac": {"dac"},
        "ms_detr": {"one_to_many"}, "mr_detr": {"mr_instructive", "mr_sep", "mr_encoder"}}


def _batch(with_masks: bool, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(2, 3, 64, 64, generator=g)
    pixel_mask = torch.zeros(2, 64, 64, dtype=torch.bool)
    targets = []
    for n in (2, 3):
        wh = 0.2 + 0.3 * torch.rand(n, 2, generator=g)
        centre = wh / 2 + (1 - wh) * torch.rand(n, 2, generator=g)
        target = {"boxes": torch.cat([centre, wh], 1), "labels": torch.randint(0, 5, (n,), generator=g)}
        if with_masks:
            x0y0 = ((centre - wh / 2) * 64).long()
            x1y1 = ((centre + wh / 2) * 64).long()
            masks = torch.zeros(n, 64, 64, dtype=torch.bool)
            for i in range(n):
                masks[i, x0y0[i, 1]: x1y1[i, 1], x0y0[i, 0]: x1y1[i, 0]] = True
            target["masks"] = masks
        targets.append(target)
    return images, pixel_mask, targets


def expected_streams(methods: list[str]) -> set[str]:
    streams = set(BASE_STREAMS)
    if "dab" in methods:
        streams.discard("encoder")  # single-stage
    for method in methods:
        streams |= ADDS.get(method, set())
    return streams


def _step_streams(spec: str) -> tuple[set[str], set[str]]:
    """One forward / backward of `spec` (shrunk): the streams and the term names of its loss."""
    torch.manual_seed(0)
    cfg = load_config(spec, SHRINK)
    model = build_model(cfg.model)
    criterion = build_criterion(cfg.supervision, cfg.model.num_classes, with_masks=cfg.model.mask_head.enabled)
    images, pixel_mask, targets = _batch(cfg.model.mask_head.enabled)
    model.train()
    output = model(images, pixel_mask, targets=targets)
    result = criterion(output, targets)
    assert torch.isfinite(result.total)
    result.total.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    return {key.split(".")[0] for key in result.terms}, {key.rsplit(".", 1)[-1] for key in result.terms}


@pytest.mark.parametrize("with_msdetr", [False, True], ids=["alone", "with_ms_detr"])
@pytest.mark.parametrize("method", [m for m in METHOD_ORDER if m != "ms_detr"])
def test_method_overlay_trains_a_step_with_its_streams(method, with_msdetr):
    methods = [method, "ms_detr"] if with_msdetr else [method]
    streams, terms = _step_streams("+".join(["tiny_ddetr", *methods]))
    assert streams == expected_streams(methods)
    assert ({"mask", "dice"} <= terms) == (method == "mask")


@pytest.mark.slow  # each method alone and with MS-DETR stays in the fast tier (above)
@pytest.mark.parametrize("spec", [v for v in system_variants() if v.count("+") >= 2 and "+dab+ms_detr" not in v])
def test_the_stacked_systems_train_a_step_with_their_streams(spec):
    """The paper's systems that stack methods (H-DETR on ++, DN on DAB, Align on DINO, ...)."""
    streams, _ = _step_streams(spec)
    assert streams == expected_streams(spec.split("+")[1:])
