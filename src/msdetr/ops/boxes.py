"""Box conversions and overlap measures used by matching, losses and post-processing.

Boxes are either (cx, cy, w, h) ("cxcywh") or (x0, y0, x1, y1) ("xyxy"), in any
unit, as the last dimension of size 4. Pairwise functions broadcast over leading
(batch) dimensions, which torchvision's 2-D versions do not, and use few, large
tensor operations because the assigners call them for every decoder layer. The
arithmetic follows the DETR / Deformable-DETR box utilities operation for
operation, so results are bit-identical to theirs.

`eps` (default 0, exact): added to the union and to the enclosing area where they divide, as the
IDEA / detrex box utilities do with 1e-6 (Align-DETR's release); `supervision.iou_epsilon`.
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


def _geometry(boxes: Tensor, in_fmt: BoxFormat) -> Tensor:
    """(..., N, 4) boxes -> contiguous (..., 5, N): rows x0, y0, x1, y1 and the area (computed from
    the corners, as DETR does)."""
    first, second = boxes.transpose(-1, -2).unflatten(-2, (2, 2)).unbind(-3)  # (..., 2, N) each
    if in_fmt == "cxcywh":
        half = 0.5 * second
        low, high = first - half, first + half
    else:
        low, high = first, second
    # width * height (a product of two factors: the same rounding as DETR's box_area)
    area = (high - low).prod(dim=-2, keepdim=True)
    return torch.cat([low, high, area], dim=-2)


def _pairwise_geometry(boxes1: Tensor, boxes2: Tensor, in_fmt: BoxFormat) -> tuple[tuple[Tensor, ...], ...]:
    """Corners and areas of both box sets, shaped for pairwise broadcasting:
    (x0, y0, x1, y1, area) of `boxes1` as (..., N, 1) views and of `boxes2` as (..., 1, M) views.

    Both sets go through one conversion when their leading dims and dtypes agree: each tensor
    operation has a fixed cost, and the assigners call this for every decoder layer. The rows of
    a contiguous (..., 5, N) geometry keep the large pairwise operations on contiguous memory (a
    transposed layout makes them several times slower).
    """
    n = boxes1.shape[-2]
    if boxes1.shape[:-2] == boxes2.shape[:-2] and boxes1.dtype == boxes2.dtype:
        geometry = _geometry(torch.cat([boxes1, boxes2], dim=-2), in_fmt)
        return geometry[..., :n, None].unbind(-3), geometry[..., None, n:].unbind(-3)
    return _geometry(boxes1, in_fmt)[..., None].unbind(-3), _geometry(boxes2, in_fmt)[..., None, :].unbind(-3)


def _pairwise_extent(
    geometry1: tuple[Tensor, ...], geometry2: tuple[Tensor, ...], enclosing: bool
) -> tuple[Tensor, Tensor]:
    """(..., N, M) area of the intersection (or, with `enclosing`, of the smallest enclosing box)
    from `_pairwise_geometry`'s views, plus a spare (..., N, M) buffer.

    Works one axis at a time with in-place operations, so only three (..., N, M) tensors are
    ever allocated: on the CPU, large fresh allocations and cache misses cost more than the
    arithmetic.
    """
    x0a, y0a, x1a, y1a, _ = geometry1
    x0b, y0b, x1b, y1b, _ = geometry2
    lower, upper = (torch.minimum, torch.maximum) if enclosing else (torch.maximum, torch.minimum)
    width = upper(x1a, x1b)
    spare = lower(x0a, x0b)
    width.sub_(spare).clamp_(min=0)
    height = upper(y1a, y1b)
    lower(y0a, y0b, out=spare)
    height.sub_(spare).clamp_(min=0)
    return width.mul_(height), spare


def _pairwise_inter_union(geometry1: tuple[Tensor, ...], geometry2: tuple[Tensor, ...]) -> tuple[Tensor, Tensor]:
    inter, union = _pairwise_extent(geometry1, geometry2, enclosing=False)
    torch.add(geometry1[4], geometry2[4], out=union)
    return inter, union.sub_(inter)


def pairwise_box_iou(boxes1: Tensor, boxes2: Tensor, in_fmt: BoxFormat = "xyxy", eps: float = 0.0) -> Tensor:
    """IoU of every box of `boxes1` with every box of `boxes2`: inter / (union + eps).

    boxes1: (..., N, 4); boxes2: (..., M, 4), same leading dims, both in `in_fmt`.
    Returns (..., N, M).
    """
    inter, union = _pairwise_inter_union(*_pairwise_geometry(boxes1, boxes2, in_fmt))
    return inter.div_(union.add_(eps) if eps else union)


def pairwise_generalized_box_iou(
    boxes1: Tensor, boxes2: Tensor, in_fmt: BoxFormat = "xyxy", eps: float = 0.0
) -> Tensor:
    """Generalized IoU (Rezatofighi et al. 2019) of every pair, in [-1, 1]:
    inter / (union + eps) - (enclosing - union) / (enclosing + eps).

    boxes1: (..., N, 4); boxes2: (..., M, 4), same leading dims, both in `in_fmt`.
    Returns (..., N, M).
    """
    geometry = _pairwise_geometry(boxes1, boxes2, in_fmt)
    inter, union = _pairwise_inter_union(*geometry)
    iou = inter.div_(union + eps) if eps else inter.div_(union)
    enclosing, spare = _pairwise_extent(*geometry, enclosing=True)
    # giou = iou - (enclosing - union) / enclosing
    gap = torch.sub(enclosing, union, out=spare)
    return iou.sub_(gap.div_(enclosing.add_(eps) if eps else enclosing))


def aligned_box_iou_giou(
    boxes1: Tensor, boxes2: Tensor, in_fmt: BoxFormat = "xyxy", eps: float = 0.0
) -> tuple[Tensor, Tensor]:
    """IoU and generalized IoU of corresponding boxes (the diagonal of the pairwise matrices):
    inter / (union + eps) and that minus (enclosing - union) / (enclosing + eps).

    boxes1, boxes2: (..., 4) in `in_fmt`, the same shape. Returns two (...) tensors. The one
    aligned-pair overlap of the project (losses, IoU-aware quality); DETR's formulas (corners
    x0 = cx - 0.5 w, ..., areas as products of the side lengths), on both sets stacked.
    """
    both = torch.stack([boxes1, boxes2])  # (2, ..., 4)
    if in_fmt == "cxcywh":
        center, half = both[..., :2], 0.5 * both[..., 2:]
        low, high = center - half, center + half  # (2, ..., 2) each
    else:
        low, high = both[..., :2], both[..., 2:]
    area = (high - low).prod(dim=-1)  # (2, ...)
    inter = (high.amin(dim=0) - low.amax(dim=0)).clamp(min=0).prod(dim=-1)
    enclosing = (high.amax(dim=0) - low.amin(dim=0)).clamp(min=0).prod(dim=-1)
    union = area[0] + area[1] - inter
    iou = inter / (union + eps) if eps else inter / union
    return iou, iou - (enclosing - union) / (enclosing + eps if eps else enclosing)

