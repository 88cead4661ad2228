"""Box conversions and overlap measures used by matching, losses and post-processing.

Boxes are either (cx, cy, w, h) ("cxcywh") or (x0, y0, x1, y1) ("xyxy"), in any
unit, as the last dimension of size 4. Pairwise functions broadcast over leading
(batch) dimensions, which torchvision's 2-D versions do not, and use few, large
tensor operations because the assigners call them for every decoder layer. The
arithmetic follows the DETR / Deformable-DETR box utilities operation for
operation, so results are bit-identical to theirs.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor


def box_cxcywh_to_xyxy(boxes: Tensor) -> Tensor:
    """(..., 4) cxcywh -> (..., 4) xyxy (x0 = cx - 0.5 w, x1 = cx + 0.5 w, likewise y)."""
    center, half = boxes[..., :2], 0.5 * boxes[..., 2:]
    return torch.cat([center - half, center + half], dim=-1)


def box_xyxy_to_cxcywh(boxes: Tensor) -> Tensor:
    """(..., 4) xyxy -> (..., 4) cxcywh."""
    low, high = boxes[..., :2], boxes[..., 2:]
    return torch.cat([(low + high) / 2, high - low], dim=-1)


def box_area(boxes: Tensor) -> Tensor:
    """(..., 4) xyxy -> (...) area."""
    return (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])


BoxFormat = Literal["xyxy", "cxcywh"]


def _corners(boxes: Tensor, in_fmt: BoxFormat) -> tuple[Tensor, Tensor]:
    """Low (x0, y0) and high (x1, y1) corners of (..., N, 4) boxes as contiguous (..., 2, N)
    tensors, so that pairwise operations broadcast over both coordinates in one call."""
    # Row-major (..., 4, N): every result below is then row-major too, which keeps the large
    # pairwise operations on contiguous memory (a transposed layout makes them several times slower).
    coords = boxes.transpose(-1, -2).contiguous()
    if in_fmt == "cxcywh":
        center, half = coords[..., :2, :], 0.5 * coords[..., 2:, :]
        return center - half, center + half
    return coords[..., :2, :], coords[..., 2:, :]


def _pairwise_extent(
    low1: Tensor, high1: Tensor, low2: Tensor, high2: Tensor, enclosing: bool
) -> tuple[Tensor, Tensor]:
    """(..., N, M) area of the intersection (or, with `enclosing`, of the smallest enclosing box)
    from (..., 2, N) and (..., 2, M) corners, plus a spare (..., N, M) buffer.

    Works one axis at a time with in-place operations, so only three (..., N, M)
    tensors are ever allocated: on the CPU, fresh large allocations (page faults)
    cost more than the arithmetic.
    """
    lower, upper = (torch.minimum, torch.maximum) if enclosing else (torch.maximum, torch.minimum)
    width = upper(high1[..., 0, :, None], high2[..., 0, None, :])
    spare = lower(low1[..., 0, :, None], low2[..., 0, None, :])
    width.sub_(spare).clamp_(min=0)
    height = upper(high1[..., 1, :, None], high2[..., 1, None, :])
    lower(low1[..., 1, :, None], low2[..., 1, None, :], out=spare)
    height.sub_(spare).clamp_(min=0)
    return width.mul_(height), spare


def _corner_area(low: Tensor, high: Tensor) -> Tensor:
    size = high - low
    return size[..., 0, :] * size[..., 1, :]


def _pairwise_inter_union(
    corners1: tuple[Tensor, Tensor], corners2: tuple[Tensor, Tensor]
) -> tuple[Tensor, Tensor]:
    inter, union = _pairwise_extent(*corners1, *corners2, enclosing=False)
    torch.add(_corner_area(*corners1)[..., :, None], _corner_area(*corners2)[..., None, :], out=union)
    return inter, union.sub_(inter)


def pairwise_box_iou(boxes1: Tensor, boxes2: Tensor, in_fmt: BoxFormat = "xyxy") -> Tensor:
    """IoU of every box of `boxes1` with every box of `boxes2`.

    boxes1: (..., N, 4); boxes2: (..., M, 4), same leading dims, both in `in_fmt`.
    Returns (..., N, M).
    """
    inter, union = _pairwise_inter_union(_corners(boxes1, in_fmt), _corners(boxes2, in_fmt))
    return inter.div_(union)


def pairwise_generalized_box_iou(boxes1: Tensor, boxes2: Tensor, in_fmt: BoxFormat = "xyxy") -> Tensor:
    """Generalized IoU (Rezatofighi et al. 2019) of every pair, in [-1, 1].

    boxes1: (..., N, 4); boxes2: (..., M, 4), same leading dims, both in `in_fmt`.
    Returns (..., N, M).
    """
    corners1, corners2 = _corners(boxes1, in_fmt), _corners(boxes2, in_fmt)
    inter, union = _pairwise_inter_union(corners1, corners2)
    iou = inter.div_(union)
    enclosing, spare = _pairwise_extent(*corners1, *corners2, enclosing=True)
    # giou = iou - (enclosing - union) / enclosing
    return iou.sub_(torch.sub(enclosing, union, out=spare).div_(enclosing))


def aligned_generalized_box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Generalized IoU of corresponding boxes (the diagonal of the pairwise matrix).

    boxes1, boxes2: (..., 4) xyxy with the same shape. Returns (...).
    """
    area1 = box_area(boxes1)
    area2 = box_area(boxes2)
    top_left = torch.maximum(boxes1[..., :2], boxes2[..., :2])
    bottom_right = torch.minimum(boxes1[..., 2:], boxes2[..., 2:])
    wh = (bottom_right - top_left).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    union = area1 + area2 - inter
    iou = inter / union
    top_left = torch.minimum(boxes1[..., :2], boxes2[..., :2])
    bottom_right = torch.maximum(boxes1[..., 2:], boxes2[..., 2:])
    wh = (bottom_right - top_left).clamp(min=0)
    enclosing = wh[..., 0] * wh[..., 1]
    return iou - (enclosing - union) / enclosing
