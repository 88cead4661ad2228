"""Drawing detections and candidate boxes on images (torchvision's drawing utilities)."""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image
from torch import Tensor
from torchvision.utils import draw_bounding_boxes, draw_segmentation_masks

PALETTE = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#bfef45",
           "#fabed4", "#469990", "#dcbeff", "#9a6324", "#800000", "#aaffc3", "#808000", "#000075"]


def class_color(label: int) -> str:
    return PALETTE[int(label) % len(PALETTE)]


def _line_width(height: int, width: int) -> int:
    return max(1, round(max(height, width) / 320))


MASK_ALPHA = 0.5


def draw_masks(rgb: Tensor, masks: Tensor, labels: Tensor) -> Tensor:
    """Instance masks blended at MASK_ALPHA in their class colour. rgb: (3, H, W) uint8; masks:
    (K, H, W) bool; labels: (K,). Returns a new (3, H, W) uint8 image."""
    if len(masks) == 0:
        return rgb.clone()
    colors = [class_color(c) for c in labels.tolist()]
    return draw_segmentation_masks(rgb, masks.bool(), alpha=MASK_ALPHA, colors=colors)


def draw_detections(rgb: Tensor, boxes: Tensor, labels: Tensor, names: list[str], scores: Tensor,
                    masks: Tensor | None = None) -> Tensor:
    """Boxes with "name score" captions, one colour per class, over the masks when given.

    rgb: (3, H, W) uint8; boxes: (K, 4) xyxy pixels; labels: (K,) int64; names: K
    strings; scores: (K,); masks: (K, H, W) bool or None. Returns a new (3, H, W) uint8 image.
    """
    if len(boxes) == 0:
        return rgb.clone()
    if masks is not None:
        rgb = draw_masks(rgb, masks, labels)
    captions = [f"{name} {score:.2f}" for name, score in zip(names, scores.tolist())]
    colors = [class_color(c) for c in labels.tolist()]
    return draw_bounding_boxes(rgb, boxes.float(), labels=captions, colors=colors,
                               width=_line_width(*rgb.shape[-2:]))


def save_image(rgb: Tensor, path: str | Path) -> Path:
    """Write a (3, H, W) uint8 image (format from the suffix), creating the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb.permute(1, 2, 0).contiguous().numpy()).save(path)
    return path


def side_by_side(panels: list[Tensor], gap: int = 4, fill: int = 255) -> Tensor:
    """Concatenate (3, H_i, W_i) uint8 images left to right, top-aligned, `gap` pixels apart."""
    height = max(int(p.shape[-2]) for p in panels)
    width = sum(int(p.shape[-1]) for p in panels) + gap * (len(panels) - 1)
    canvas = torch.full((3, height, width), fill, dtype=torch.uint8)
    x = 0
    for panel in panels:
        h, w = panel.shape[-2:]
        canvas[:, :h, x : x + w] = panel
        x += w + gap
    return canvas
