"""Every preset wires up: shrunk to the tiny size (its method options and supervision kept), it
builds, runs one training forward and backward in-process, returns the streams its name promises,
gets a finite loss term for each of them, and predicts with the one-to-one stream alone.

This replaces per-preset `Trainer` runs (the trainer itself runs end to end in
`test_train_end_to_end.py` and in the two slow preset runs of `test_preset_training.py`)."""

from __future__ import annotations

import math

import pytest
import torch

from msdetr.config.loader import list_presets, load_config
from msdetr.losses.build import build_criterion
from msdetr.modeling.build import build_model
from support.tiny import padded_batch, shrunken_preset

PRESETS = sorted(list_presets())


def expected_streams(name: str) -> set[str]:
    """The loss streams a preset's name promises (independent of how the config spells them)."""
    streams = {"one_to_one"}
    if name.startswith(("msdetr_", "tiny")) and name != "tiny_ddetr":  # tiny_ddetr: tiny without MS-DETR
        streams.add("one_to_many")
    if "hdetr" in name:
        streams.add("hybrid")
    if name.startswith(("group_", "msdetr_group_")):
        streams.add("group")
    if "dn_" in name or "dino" in name:
        streams.add("denoising")
    if "dac" in name:
        streams.add("dac")
    if "mrdetr" in name:  # Mr. DETR's routes (and, with denoising, the denoising queries on each route)
        streams |= {"mr_instructive", "mr_sep"}
        if "denoising" in streams:
            streams |= {"mr_instructive_dn", "mr_sep_dn"}
    return streams


def expected_proposal_sets(name: str) -> set[str]:
    """Further proposal sets (`DetectorOutput.encoders`) a preset's name promises: Mr. DETR's second head."""
    return {"mr_encoder"} if "mrdetr" in name else set()


def targets_for(sizes: list[tuple[int, int]], num_classes: int, masks: bool) -> list[dict[str, torch.Tensor]]:
    """Two objects an image (normalized cx, cy, w, h), with box-shaped masks of the image's size."""
    g = torch.Generator().manual_seed(3)
    out = []
    for h, w in sizes:
        boxes = torch.tensor([[0.3, 0.35, 0.3, 0.4], [0.7, 0.6, 0.25, 0.3]])
        target = {"boxes": boxes, "labels": torch.randint(num_classes, (2,), generator=g)}
        if masks:
            m = torch.zeros(2, h, w, dtype=torch.bool)
            for i, (cx, cy, bw, bh) in enumerate(boxes.tolist()):
                top, bottom = int((cy - bh / 2) * h), int((cy + bh / 2) * h)
                left, right = int((cx - bw / 2) * w), int((cx + bw / 2) * w)
                m[i, top:bottom, left:right] = True
            target["masks"] = m
        out.append(target)
    return out


def test_every_method_family_has_a_preset():
    families = set().union(*(expected_streams(name) for name in PRESETS))
    assert families == {"one_to_one", "one_to_many", "hybrid", "group", "denoising", "dac", "mr_instructive", "mr_sep",
                        "mr_instructive_dn", "mr_sep_dn"}
    assert {"mask_ddetr_r50_300", "msdetr_mask_ddetr_r50_300", "align_dino_r50_900"} <= set(PRESETS)


@pytest.mark.parametrize("name", PRESETS)
def test_preset_builds_trains_one_step_and_predicts(name):
    cfg = shrunken_preset(load_config(name))
    torch.manual_seed(0)
    model = build_model(cfg.model).train()
    with_masks = cfg.model.mask_head.enabled
    criterion = build_criterion(cfg.supervision, cfg.model.num_classes, with_masks=with_masks)
    sizes = [(64, 64), (48, 56)]
    _, images, pixel_mask = padded_batch(sizes)
    targets = targets_for(sizes, cfg.model.num_classes, with_masks)

    output = model(images, pixel_mask, targets=targets)
    streams = expected_streams(name)
    assert set(output.streams) == streams
    for stream in streams:
        assert output.streams[stream].logits.shape[0] == cfg.model.dec_layers
    assert (output.encoder is not None) == cfg.model.two_stage
    assert set(output.encoders) == expected_proposal_sets(name)
    assert (output.streams["one_to_one"].masks is not None) == with_masks == ("mask" in name or "_seg" in name)

    result = criterion(output, targets)
    terms = result.term_values()
    assert all(math.isfinite(v) for v in terms.values()), {k: v for k, v in terms.items() if not math.isfinite(v)}
    prefixes = {key.split(".")[0] for key in terms}
    assert prefixes == streams | ({"encoder"} if cfg.model.two_stage else set()) | expected_proposal_sets(name)
    box_terms = ("cls", "bbox", "giou") + (("mask", "dice") if with_masks else ())
    for stream in streams:  # every decoder layer of every stream is supervised
        for layer in range(cfg.model.dec_layers):
            assert {f"{stream}.layer{layer}.{term}" for term in box_terms} <= set(terms), (stream, layer, sorted(terms))
    assert any(key.endswith(".mask") for key in terms) == with_masks
    result.total.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad and p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0

    model.eval()
    with torch.no_grad():
        out = model(images[:1], pixel_mask[:1])
    assert set(out.streams) == {"one_to_one"} and out.query_meta == {}
    assert out.logits.shape == (1, cfg.model.num_queries, cfg.model.num_classes)
