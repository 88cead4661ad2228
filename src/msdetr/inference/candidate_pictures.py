"""Pictures of one object's candidate boxes, one panel per checkpoint (paper Fig. 1 / 7)."""

from __future__ import annotations

import numpy as np
import torch
from matplotlib import colormaps
from PIL import Image, ImageDraw
from torch import Tensor
from torchvision.transforms.v2 import functional as F
from torchvision.utils import draw_bounding_boxes

OBJECT_COLOR = "#00e000"
TITLE_HEIGHT = 18


def rank_colors(k: int) -> list[tuple[int, int, int]]:
    """k colours from bright (best candidate) to dark (k-th), matplotlib's `plasma` reversed."""
    cmap = colormaps["plasma"]
    return [tuple(int(255 * c) for c in cmap(0.9 - 0.8 * i / max(k - 1, 1))[:3]) for i in range(k)]


def _with_title(rgb: Tensor, title: str) -> Tensor:
    """Add a white strip with `title` above a (3, H, W) uint8 image."""
    strip = Image.new("RGB", (int(rgb.shape[-1]), TITLE_HEIGHT), (255, 255, 255))
    ImageDraw.Draw(strip).text((4, 3), title, fill=(0, 0, 0))
    strip_t = torch.from_numpy(np.array(strip)).permute(2, 0, 1)
    return torch.cat([strip_t, rgb], dim=1)


def candidate_panel(rgb: Tensor, object_box: Tensor, candidate_boxes: Tensor, title: str,
                    min_side: int = 384) -> Tensor:
    """One panel: the object's box (thick green) and its candidates (thin, best on top).

    rgb:             (3, H, W) uint8 image
    object_box:      (4,) xyxy pixels
    candidate_boxes: (k, 4) xyxy pixels, best first
    min_side:        small images are enlarged so their shorter side is at least this
    returns:         (3, TITLE_HEIGHT + H', W') uint8
    """
    height, width = int(rgb.shape[-2]), int(rgb.shape[-1])
    scale = max(1.0, min_side / min(height, width))
    if scale > 1.0:
        rgb = F.resize(rgb, [round(height * scale), round(width * scale)], antialias=True)
    object_box = object_box.float().reshape(1, 4) * scale
    candidate_boxes = candidate_boxes.float().reshape(-1, 4) * scale
    canvas = draw_bounding_boxes(rgb, object_box, colors=OBJECT_COLOR, width=3)
    k = int(candidate_boxes.shape[0])
    if k:
        colors = rank_colors(k)
        order = list(range(k - 1, -1, -1))  # worst first, so the best candidate is drawn last (on top)
        canvas = draw_bounding_boxes(canvas, candidate_boxes[order], colors=[colors[i] for i in order],
                                     width=1)
    return _with_title(canvas, title)
