"""Ranking query boxes by IoU with each object, and the top-1/5/20 summary."""

from __future__ import annotations

import math

import torch
from torchvision.ops import box_convert, box_iou

from msdetr.inference.candidates import CandidateSummary, ObjectCandidates, top_candidates


def test_top_candidates_by_hand():
    objects = torch.tensor([[0.5, 0.5, 0.2, 0.2], [0.2, 0.2, 0.1, 0.1]])
    queries = torch.tensor([
        [0.9, 0.9, 0.1, 0.1],  # 0: far from both
        [0.6, 0.5, 0.2, 0.2],  # 1: object 0 shifted by half its width: IoU 0.02 / 0.06 = 1/3
        [0.5, 0.5, 0.4, 0.4],  # 2: contains object 0: IoU 0.04 / 0.16 = 1/4
        [0.5, 0.5, 0.2, 0.2],  # 3: exactly object 0
        [0.2, 0.2, 0.1, 0.1],  # 4: exactly object 1
    ])
    found = top_candidates(queries, objects, k=3)
    assert found.index[0].tolist() == [3, 1, 2]
    torch.testing.assert_close(found.ious[0], torch.tensor([1.0, 1 / 3, 1 / 4]))
    assert found.index[1, 0].item() == 4 and found.ious[1, 0].item() == 1.0
    assert found.ious[1, 1:].tolist() == [0.0, 0.0]


def test_k_larger_than_the_number_of_queries():
    found = top_candidates(torch.rand(4, 4) * 0.5 + 0.25, torch.tensor([[0.5, 0.5, 0.3, 0.3]]), k=20)
    assert found.ious.shape == (1, 4)


def test_normalized_iou_is_the_pixel_iou():
    """Ranking in normalized coordinates is the same as in pixels (IoU ignores per-axis scaling)."""
    g = torch.Generator().manual_seed(0)
    queries = torch.cat([torch.rand(30, 2, generator=g), torch.rand(30, 2, generator=g) * 0.5 + 0.05], 1)
    objects = torch.cat([torch.rand(3, 2, generator=g), torch.rand(3, 2, generator=g) * 0.5 + 0.05], 1)
    found = top_candidates(queries, objects, k=5)
    scale = torch.tensor([640.0, 480.0, 640.0, 480.0])
    pixel_iou = box_iou(box_convert(objects, "cxcywh", "xyxy") * scale,
                        box_convert(queries, "cxcywh", "xyxy") * scale)
    expected, _ = pixel_iou.topk(5, dim=1)
    torch.testing.assert_close(found.ious, expected, atol=1e-5, rtol=0)


def test_summary_means_over_objects():
    summary = CandidateSummary(ranks=(1, 2, 4))
    two_objects = torch.tensor([[0.9, 0.5, 0.3, 0.1], [0.7, 0.7, 0.2, 0.2]])
    summary.add(ObjectCandidates(two_objects, torch.zeros(2, 4)))
    summary.add(ObjectCandidates(torch.tensor([[0.5, 0.1, 0.0, 0.0]]), torch.zeros(1, 4)))
    summary.add(ObjectCandidates(torch.zeros(0, 4), torch.zeros(0, 4)))  # an image without objects
    means = summary.means()
    assert summary.objects == 3
    assert math.isclose(means["top1"], (0.9 + 0.7 + 0.5) / 3, abs_tol=1e-6)
    assert math.isclose(means["top2"], (0.7 + 0.7 + 0.3) / 3, abs_tol=1e-6)
    assert math.isclose(means["top4"], (0.45 + 0.45 + 0.15) / 3, abs_tol=1e-6)
    assert all(math.isnan(v) for v in CandidateSummary().means().values())
