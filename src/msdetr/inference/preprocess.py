"""Evaluation preprocessing for arbitrary images, and batching.

Exactly the evaluation pipeline of the datasets (`msdetr.data.build_eval_transforms`:
shorter side to `eval_min_size`, longer side at most `eval_max_size`, antialiased
bilinear resize, ImageNet normalization), applied to an image without annotations.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torchvision import tv_tensors

from msdetr.config.data import TransformConfig
from msdetr.data.collate import pad_images
from msdetr.data.transform_recipes import build_eval_transforms


@dataclass
class PreparedBatch:
    """B images ready for the detector.

    images:      (B, 3, H, W) float32 normalized, zero-padded bottom/right
    pixel_mask:  (B, H, W) bool, True on padding
    orig_sizes:  (B, 2) int64 (height, width) of the original images, to scale boxes back
    """

    images: Tensor
    pixel_mask: Tensor
    orig_sizes: Tensor

    def to(self, device) -> PreparedBatch:
        return PreparedBatch(self.images.to(device), self.pixel_mask.to(device), self.orig_sizes.to(device))


class EvalPreprocessor:
    """(3, H, W) uint8 RGB -> (3, h, w) float32, resized and normalized as in evaluation."""

    def __init__(self, transforms: TransformConfig | None = None):
        self.config = transforms or TransformConfig()
        self.pipeline = build_eval_transforms(self.config)

    def __call__(self, rgb: Tensor) -> Tensor:
        height, width = int(rgb.shape[-2]), int(rgb.shape[-1])
        empty = {
            "boxes": tv_tensors.BoundingBoxes(torch.zeros(0, 4), format="XYXY", canvas_size=(height, width)),
            "labels": torch.zeros(0, dtype=torch.int64),
            "area": torch.zeros(0),
        }
        image, _ = self.pipeline(tv_tensors.Image(rgb), empty)
        return image.as_subclass(Tensor)

    def batch(self, images: list[Tensor]) -> PreparedBatch:
        """List of B (3, H_i, W_i) uint8 RGB images -> a padded batch (see `PreparedBatch`)."""
        prepared = [self(rgb) for rgb in images]
        batch, mask = pad_images(prepared)
        sizes = torch.tensor([[int(rgb.shape[-2]), int(rgb.shape[-1])] for rgb in images], dtype=torch.int64)
        return PreparedBatch(batch, mask, sizes)
