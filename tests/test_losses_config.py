"""SupervisionConfig validation and build_criterion wiring."""

from __future__ import annotations

import pytest

from msdetr.config.supervision import SupervisionConfig
from msdetr.errors import MsdetrError
from msdetr.losses import build_criterion
from msdetr.supervision import EncoderSupervision, MixedSupervision, OneToOneSupervision, TopKAssigner
from msdetr.supervision.denoising import DenoisingSupervision


def test_defaults_are_the_official_ones():
    config = SupervisionConfig()
    assert (config.matcher.cls, config.matcher.bbox, config.matcher.giou) == (2.0, 5.0, 2.0)
    o2m = config.one_to_many
    assert (o2m.k, o2m.threshold, o2m.class_weight, o2m.iou_weight, o2m.positive_fraction) == (
        6,
        0.4,
        0.3,
        0.7,
        0.25,
    )
    assert o2m.mode == "official" and not o2m.merge_one_to_one
    for weights in config.loss_weights.as_dict().values():
        assert (weights.cls, weights.bbox, weights.giou) == (2.0, 5.0, 2.0)


def test_build_wires_strategy_and_options():
    config = SupervisionConfig(strategy="mixed")
    config.one_to_many.k, config.one_to_many.mode, config.one_to_many.merge_one_to_one = 4, "paper", True
    criterion = build_criterion(config, num_classes=3)
    mixed, encoder = criterion.strategy.strategies[:2]
    assert isinstance(mixed, MixedSupervision) and isinstance(encoder, EncoderSupervision)
    # denoising tasks only appear when the detector returns a `denoising` stream
    assert any(isinstance(s, DenoisingSupervision) for s in criterion.strategy.strategies)
    assert isinstance(mixed.one_to_many, TopKAssigner)
    assert (mixed.one_to_many.k, mixed.one_to_many.mode, mixed.merge_one_to_one) == (4, "paper", True)
    plain = build_criterion(SupervisionConfig(), num_classes=3).strategy.strategies[0]
    assert isinstance(plain, OneToOneSupervision)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("strategy", "hybrid", "strategy: got 'hybrid'"),
        ("one_to_many.k", 0, "one_to_many.k: got 0"),
        ("one_to_many.mode", "literal", "one_to_many.mode"),
        ("one_to_many.positive_fraction", 0.0, "positive_fraction"),
        ("loss_weights.encoder.giou", -1.0, "loss_weights.encoder.giou"),
        ("focal_alpha", 1.5, "focal_alpha"),
    ],
)
def test_invalid_values_are_named(key, value, message):
    config = SupervisionConfig()
    *path, last = key.split(".")
    target = config
    for part in path:
        target = getattr(target, part)
    setattr(target, last, value)
    with pytest.raises(MsdetrError, match=message):
        build_criterion(config, num_classes=3)
