"""An image alone and inside a padded batch give the same outputs (padding_invariant models)."""

from __future__ import annotations

import pytest
import torch

from msdetr.config.model import MixedSupervisionConfig
from msdetr.modeling.build import build_model
from support.tiny import padded_batch, tiny_model_config


@pytest.mark.parametrize("two_stage", [True, False])
def test_alone_equals_in_padded_batch(two_stage):
    torch.manual_seed(0)
    cfg = tiny_model_config(two_stage=two_stage, mixed_selection=two_stage, look_forward_twice=True,
                            mixed_supervision=MixedSupervisionConfig(enabled=True))
    model = build_model(cfg).eval()
    # sizes that are not multiples of the stride, padded in both directions
    images, batch, mask = padded_batch([(70, 90), (101, 66), (64, 128)], seed=1)
    with torch.no_grad():
        together = model(batch, mask, all_streams=True)
        for i, image in enumerate(images):
            alone = model(image[None], torch.zeros(1, *image.shape[1:], dtype=torch.bool), all_streams=True)
            for name, stream in alone.streams.items():
                torch.testing.assert_close(together.streams[name].logits[:, i], stream.logits[:, 0],
                                           atol=1e-4, rtol=0)
                torch.testing.assert_close(together.streams[name].boxes[:, i], stream.boxes[:, 0],
                                           atol=1e-4, rtol=0)


def test_official_mode_is_not_padding_invariant():
    """The official behaviour (padding_invariant=False) lets padding change the outputs, which is why
    the invariant mode exists; this guards against the flag silently doing nothing."""
    torch.manual_seed(0)
    model = build_model(tiny_model_config(padding_invariant=False)).eval()
    images, batch, mask = padded_batch([(70, 90), (101, 66)], seed=1)
    with torch.no_grad():
        together = model(batch, mask)
        alone = model(images[0][None], torch.zeros(1, 70, 90, dtype=torch.bool))
    assert (together.logits[0] - alone.logits[0]).abs().max() > 1e-4
