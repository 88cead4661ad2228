"""Gradients of the mixed-supervision criterion reach both streams (and the encoder proposals)."""

from __future__ import annotations

import torch
from torch import nn

from msdetr.config.supervision import SupervisionConfig
from msdetr.losses import build_criterion
from msdetr.modeling.outputs import DetectorOutput, EncoderPredictions, StreamPredictions

NUM_CLASSES, LAYERS, BATCH, QUERIES, TOKENS, DIM = 6, 3, 2, 16, 24, 8


class TinyHeads(nn.Module):
    """Shared class/box heads applied to separate per-stream features, like the MS-DETR decoder."""

    def __init__(self):
        super().__init__()
        self.cls = nn.Linear(DIM, NUM_CLASSES)
        self.box = nn.Linear(DIM, 4)

    def forward(self, features):
        return StreamPredictions(self.cls(features), self.box(features).sigmoid())


def make_inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    one_to_one = torch.randn(LAYERS, BATCH, QUERIES, DIM, generator=g, requires_grad=True)
    one_to_many = torch.randn(LAYERS, BATCH, QUERIES, DIM, generator=g, requires_grad=True)
    encoder = torch.randn(BATCH, TOKENS, DIM, generator=g, requires_grad=True)
    targets = [
        {"boxes": torch.tensor([[0.4, 0.5, 0.3, 0.2], [0.7, 0.3, 0.2, 0.4]]), "labels": torch.tensor([1, 4])},
        {"boxes": torch.tensor([[0.5, 0.5, 0.5, 0.5]]), "labels": torch.tensor([2])},
    ]
    return one_to_one, one_to_many, encoder, targets


def forward(heads, one_to_one, one_to_many, encoder):
    enc = heads(encoder)
    anchors = torch.full((BATCH, TOKENS, 4), 0.3)
    return DetectorOutput(
        streams={"one_to_one": heads(one_to_one), "one_to_many": heads(one_to_many)},
        encoder=EncoderPredictions(logits=enc.logits, boxes=enc.boxes, anchors=anchors),
    )


def test_gradients_reach_both_streams_and_encoder():
    torch.manual_seed(0)
    heads = TinyHeads()
    one_to_one, one_to_many, encoder, targets = make_inputs()
    criterion = build_criterion(SupervisionConfig(strategy="mixed"), NUM_CLASSES)
    result = criterion(forward(heads, one_to_one, one_to_many, encoder), targets)
    result.total.backward()
    for name, leaf in [("one_to_one", one_to_one), ("one_to_many", one_to_many), ("encoder", encoder)]:
        assert leaf.grad is not None and torch.isfinite(leaf.grad).all(), name
        for layer in range(leaf.shape[0] if leaf.dim() == 4 else 1):
            grad = leaf.grad[layer] if leaf.dim() == 4 else leaf.grad
            assert grad.abs().sum() > 0, f"{name} layer {layer}"
    assert heads.box.weight.grad.abs().sum() > 0


def test_one_to_one_strategy_leaves_one_to_many_stream_without_gradient():
    torch.manual_seed(0)
    heads = TinyHeads()
    one_to_one, one_to_many, encoder, targets = make_inputs()
    result = build_criterion(SupervisionConfig(strategy="one_to_one"), NUM_CLASSES)(
        forward(heads, one_to_one, one_to_many, encoder), targets
    )
    result.total.backward()
    assert one_to_one.grad.abs().sum() > 0
    assert one_to_many.grad is None
    assert not any(name.startswith("one_to_many") for name in result.terms)
