"""Gradient accumulation is exact: n micro-batches in one step give the losses and gradients of the
same images run as one batch, also when the micro-batches hold different numbers of objects (one
normalizer for the step, `losses.normalization.step_target_count`), for every stream kind: the
one-to-one and MS-DETR one-to-many streams, the encoder proposals, H-DETR's hybrid branch (k-scaled
normalizer) and DAC-DETR's branch (IoU-aware loss, prime-sample weights, 3x normalizer)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from msdetr.config.supervision import LossWeights, SupervisionConfig
from msdetr.data.collate import Batch
from msdetr.engine.amp import make_scaler
from msdetr.engine.step import train_step
from msdetr.losses import build_criterion
from msdetr.losses.normalization import step_target_count
from msdetr.methods.contracts import DAC
from msdetr.modeling.hybrid_queries import HYBRID
from msdetr.modeling.outputs import ONE_TO_MANY, ONE_TO_ONE, DetectorOutput, EncoderPredictions, StreamPredictions

LAYERS, QUERIES, CLASSES, FEATURES = 2, 12, 5, 8


class PerImageDetector(nn.Module):
    """A detector stand-in whose predictions for an image depend on that image only (so batching
    changes nothing): per stream, logits (L, B, Q, C) and boxes (L, B, Q, 4) are linear in the
    image's pooled features; also encoder proposals."""

    def __init__(self, streams: tuple[str, ...]):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.embed = nn.Linear(3 * 4, FEATURES)
        self.heads = nn.ModuleDict({
            stream: nn.Linear(FEATURES, LAYERS * QUERIES * (CLASSES + 4)) for stream in streams
        })
        self.encoder = nn.Linear(FEATURES, QUERIES * (CLASSES + 4))
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)

    def forward(self, images, pixel_mask, targets=None):
        features = torch.tanh(self.embed(nn.functional.avg_pool2d(images, 4).flatten(1)))  # (B, F)
        batch = images.shape[0]
        streams = {}
        for name, head in self.heads.items():
            out = head(features).view(batch, LAYERS, QUERIES, CLASSES + 4).transpose(0, 1)
            streams[name] = StreamPredictions(logits=out[..., :CLASSES], boxes=box_of(out[..., CLASSES:]))
        enc = self.encoder(features).view(batch, QUERIES, CLASSES + 4)
        anchors = box_of(enc[..., CLASSES:].detach() * 0.5)
        encoder = EncoderPredictions(logits=enc[..., :CLASSES], boxes=box_of(enc[..., CLASSES:]), anchors=anchors)
        return DetectorOutput(streams=streams, encoder=encoder)


def box_of(raw: torch.Tensor) -> torch.Tensor:
    """(..., 4) -> valid cxcywh boxes: centers in (0.2, 0.8), sides in (0.05, 0.35)."""
    return torch.cat([0.2 + 0.6 * raw[..., :2].sigmoid(), 0.05 + 0.3 * raw[..., 2:].sigmoid()], -1)


def make_batch(counts: list[int], seed: int) -> Batch:
    g = torch.Generator().manual_seed(seed)
    targets = []
    for n in counts:
        centers = 0.3 + 0.4 * torch.rand(n, 2, generator=g)
        sides = 0.1 + 0.2 * torch.rand(n, 2, generator=g)
        targets.append({"boxes": torch.cat([centers, sides], 1),
                        "labels": torch.randint(0, CLASSES, (n,), generator=g)})
    images = torch.randn(len(counts), 3, 8, 8, generator=g)
    return Batch(images, torch.zeros(len(counts), 8, 8, dtype=torch.bool), targets)


def joined(batches: list[Batch]) -> Batch:
    return Batch(torch.cat([b.images for b in batches]), torch.cat([b.pixel_mask for b in batches]),
                 [t for b in batches for t in b.targets])


def supervision(kind: str) -> tuple[SupervisionConfig, tuple[str, ...]]:
    cfg = SupervisionConfig(strategy="mixed")
    cfg.one_to_many.positive_fraction = 1.0  # no random subsampling of the top-K positives
    cfg.one_to_many.k = 3
    streams = (ONE_TO_ONE, ONE_TO_MANY)
    if kind == "hybrid":
        cfg.hybrid.enabled, cfg.hybrid.k = True, 3
        cfg.loss_weights.hybrid = LossWeights(cls=2.0, bbox=5.0, giou=2.0)
        streams += (HYBRID,)
    elif kind == "dac":
        cfg.dac.enabled, cfg.dac.positive_fraction, cfg.dac.k = True, 1.0, 3
        cfg.classification_loss.dac = "iou_aware"
        cfg.loss_weights.dac = LossWeights(cls=1.0, bbox=5.0, giou=2.0)
        streams += (DAC,)
    elif kind == "align":
        cfg.strategy = "one_to_one"
        cfg.many_to_one.enabled = True
        cfg.classification_loss.one_to_one = "iou_aware"
        cfg.iou_epsilon = 1e-6
        streams = (ONE_TO_ONE,)
    return cfg, streams


def step(model, criterion, batches):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)  # keep the weights; the gradients stay
    result = train_step(model, criterion, batches, optimizer, make_scaler("none", torch.device("cpu")),
                        torch.device("cpu"), "none", 0.0)
    assert result.ok
    return result, {name: p.grad.clone() for name, p in model.named_parameters()}


@pytest.mark.parametrize("kind", ["mixed", "hybrid", "dac", "align"])
def test_accumulated_step_equals_the_same_images_as_one_batch(kind):
    cfg, streams = supervision(kind)
    # micro-batches with different object counts (5, 0 and 2), one image without objects
    micro = [make_batch([3, 2], seed=1), make_batch([0, 0], seed=2), make_batch([2, 0], seed=3)]
    model = PerImageDetector(streams)
    accumulated, grads_accumulated = step(model, build_criterion(cfg, CLASSES), micro)
    single, grads_single = step(copy.deepcopy(model), build_criterion(cfg, CLASSES), [joined(micro)])

    assert accumulated.loss == pytest.approx(single.loss, rel=1e-5)
    assert accumulated.terms.keys() == single.terms.keys()
    for name, value in single.terms.items():
        assert accumulated.terms[name] == pytest.approx(value, rel=1e-4, abs=1e-7), name
    for name, grad in grads_single.items():
        assert grad.abs().sum() > 0, name
        torch.testing.assert_close(grads_accumulated[name], grad, rtol=1e-4, atol=1e-7, msg=name)


def test_each_micro_batch_normalized_by_its_own_count_would_differ():
    """The check above can fail: per-micro-batch normalizers (the former behaviour) give other
    gradients for micro-batches of different object counts."""
    cfg, streams = supervision("mixed")
    micro = [make_batch([3, 2], seed=1), make_batch([1, 0], seed=3)]
    model = PerImageDetector(streams)
    criterion = build_criterion(cfg, CLASSES)
    model.zero_grad()
    for batch in micro:  # each micro-batch divided by its own count
        output = model(batch.images, batch.pixel_mask)
        (criterion(output, batch.targets).total / len(micro)).backward()
    own = {name: p.grad.clone() for name, p in model.named_parameters()}
    _, shared = step(model, criterion, micro)
    assert not torch.allclose(own["embed.weight"], shared["embed.weight"], rtol=1e-3)


def test_step_target_count_averages_over_micro_batches_unclamped():
    micro = [make_batch([3, 2], seed=1), make_batch([0, 0], seed=2)]
    assert step_target_count([b.targets for b in micro], torch.device("cpu")).item() == 2.5
    empty = [make_batch([0], seed=1), make_batch([0, 0], seed=2)]
    assert step_target_count([b.targets for b in empty], torch.device("cpu")).item() == 0.0
