"""bf16 autocast on the CPU: the criterion runs in float32 and gives finite, equal losses."""

from __future__ import annotations

import torch
from torch import nn

from msdetr.config.supervision import SupervisionConfig
from msdetr.losses import build_criterion
from msdetr.modeling.outputs import DetectorOutput, EncoderPredictions, StreamPredictions

NUM_CLASSES, DIM = 7, 16


def model_output(heads, features, encoder_features, anchors):
    cls, box = heads
    streams = {name: StreamPredictions(cls(f), box(f).sigmoid()) for name, f in features.items()}
    return DetectorOutput(
        streams=streams,
        encoder=EncoderPredictions(cls(encoder_features), box(encoder_features).sigmoid(), anchors),
    )


def detached_float(output):
    return DetectorOutput(
        streams={
            n: StreamPredictions(s.logits.detach().float(), s.boxes.detach().float())
            for n, s in output.streams.items()
        },
        encoder=EncoderPredictions(
            output.encoder.logits.detach().float(),
            output.encoder.boxes.detach().float(),
            output.encoder.anchors,
        ),
    )


def test_bf16_autocast_losses_are_float32_finite_and_match():
    torch.manual_seed(0)
    heads = (nn.Linear(DIM, NUM_CLASSES), nn.Linear(DIM, 4))
    features = {"one_to_one": torch.randn(3, 2, 30, DIM), "one_to_many": torch.randn(3, 2, 30, DIM)}
    encoder_features, anchors = torch.randn(2, 40, DIM), torch.rand(2, 40, 4) * 0.5 + 0.25
    targets = [
        {"boxes": torch.tensor([[0.4, 0.5, 0.3, 0.2], [0.6, 0.4, 0.2, 0.3]]), "labels": torch.tensor([1, 6])},
        {"boxes": torch.tensor([[0.5, 0.5, 0.4, 0.4]]), "labels": torch.tensor([3])},
    ]
    criterion = build_criterion(SupervisionConfig(strategy="mixed"), NUM_CLASSES)

    with torch.autocast("cpu", dtype=torch.bfloat16):
        output = model_output(heads, features, encoder_features, anchors)
        assert output.streams["one_to_one"].logits.dtype == torch.bfloat16
        torch.manual_seed(1)
        amp = criterion(output, targets)
    torch.manual_seed(1)
    reference = criterion(detached_float(output), targets)  # same bf16 values, no autocast
    torch.manual_seed(1)
    full = criterion(model_output(heads, features, encoder_features, anchors), targets)  # float32 model

    assert amp.total.dtype == torch.float32 and torch.isfinite(amp.total)
    for name, value in amp.terms.items():
        assert value.dtype == torch.float32 and torch.isfinite(value), name
        torch.testing.assert_close(value.detach(), reference.terms[name], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(amp.total.detach(), full.total.detach(), rtol=5e-2, atol=0)
    amp.total.backward()
    assert torch.isfinite(heads[0].weight.grad).all() and heads[0].weight.grad.abs().sum() > 0
