"""Pairwise IoU / GIoU: bit-identical to torchvision's 2-D versions, batched over leading dims."""

from __future__ import annotations

import pytest
import torch
from torchvision.ops import box_convert, box_iou, generalized_box_iou

from msdetr.ops.boxes import pairwise_box_iou, pairwise_generalized_box_iou


def random_boxes(generator, *shape):
    """(*shape, 4) valid cxcywh boxes, including degenerate (zero width) ones."""
    center = torch.rand(*shape, 2, generator=generator)
    size = 0.4 * torch.rand(*shape, 2, generator=generator)
    size[..., 0].view(-1)[::7] = 0.0
    return torch.cat([center, size], dim=-1)


@pytest.mark.parametrize("in_fmt", ["cxcywh", "xyxy"])
@pytest.mark.parametrize(
    ("ours", "reference"), [(pairwise_box_iou, box_iou), (pairwise_generalized_box_iou, generalized_box_iou)]
)
def test_batched_equals_torchvision_bitwise(in_fmt, ours, reference):
    g = torch.Generator().manual_seed(0)
    boxes1, boxes2 = random_boxes(g, 3, 7), random_boxes(g, 3, 40)
    if in_fmt == "xyxy":
        boxes1, boxes2 = box_convert(boxes1, "cxcywh", "xyxy"), box_convert(boxes2, "cxcywh", "xyxy")
    got = ours(boxes1, boxes2, in_fmt=in_fmt)
    assert got.shape == (3, 7, 40)
    for b in range(3):
        expected = reference(box_convert(boxes1[b], in_fmt, "xyxy"), box_convert(boxes2[b], in_fmt, "xyxy"))
        # zero-area pairs give 0 / 0 = NaN in both (a degenerate box against itself)
        torch.testing.assert_close(got[b], expected, rtol=0, atol=0, equal_nan=True)


def test_broadcast_leading_dims_and_empty_sets():
    g = torch.Generator().manual_seed(1)
    boxes1, boxes2 = random_boxes(g, 1, 5), random_boxes(g, 4, 9)
    got = pairwise_generalized_box_iou(boxes1, boxes2, in_fmt="cxcywh")
    assert got.shape == (4, 5, 9)
    for b in range(4):
        expected = pairwise_generalized_box_iou(boxes1[0], boxes2[b], in_fmt="cxcywh")
        torch.testing.assert_close(got[b], expected, rtol=0, atol=0, equal_nan=True)
    assert pairwise_box_iou(boxes1, boxes2[:, :0], in_fmt="cxcywh").shape == (4, 5, 0)
    assert pairwise_box_iou(boxes1[:, :0], boxes2, in_fmt="cxcywh").shape == (4, 0, 9)
