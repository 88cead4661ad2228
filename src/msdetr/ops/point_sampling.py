"""Point sampling of instance masks (Mask2Former / PointRend), so mask losses and mask matching
costs never need full-resolution masks.

Points are (x, y) in [0, 1]^2 relative to each image's *unpadded* area (x = 0.5 / w is the
centre of the first pixel column). Predictions are read bilinearly from the model's mask
map (which covers the padded input at `stride`); targets by nearest pixel from each object's
own (h, w) mask, gathered from one flat buffer: neither is resized or padded.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor


def to_map_grid(points: Tensor, image_sizes: Tensor, map_size: tuple[int, int], stride: int) -> Tensor:
    """grid_sample coordinates in [-1, 1] of image-relative points on a mask map.

    points:      (P, N, 2) (x, y) in [0, 1] of each row's image
    image_sizes: (P, 2) float (h, w) of each row's unpadded image, in input pixels
    map_size:    (H_m, W_m) of the mask map, covering H_m * stride x W_m * stride input pixels
    returns:     (P, N, 2) for grid_sample(align_corners=False)
    """
    h_m, w_m = map_size
    extent = torch.stack([image_sizes[:, 1] / (w_m * stride), image_sizes[:, 0] / (h_m * stride)], -1)
    return points * (2 * extent[:, None, :]) - 1


def sample_maps(maps: Tensor, grid: Tensor) -> Tensor:
    """Bilinear values of (P, H, W) maps at (P, N, 2) grid coordinates -> (P, N)."""
    return F.grid_sample(maps[:, None], grid[:, :, None, :], align_corners=False)[:, 0, :, 0]


def sample_pixel_embed(pixel_embed: Tensor, grid: Tensor) -> Tensor:
    """Bilinear embeddings of a (B, M, H, W) map at (B, N, 2) grid coordinates -> (B, M, N)."""
    return F.grid_sample(pixel_embed, grid[:, :, None, :], align_corners=False)[..., 0]


class FlatMasks:
    """Binary masks of different sizes in one flat buffer, readable at points without padding.

    masks: per image a (n_i, h_i, w_i) bool/uint8 tensor (the targets' `masks`).
    """

    def __init__(self, masks: list[Tensor]):
        device = masks[0].device if masks else torch.device("cpu")
        self.buffer = torch.cat([m.reshape(-1).bool() for m in masks]) if masks else torch.zeros(0, dtype=torch.bool)
        counts = torch.tensor([m.shape[0] for m in masks], device=device)
        sizes = torch.tensor([list(m.shape[-2:]) for m in masks], device=device, dtype=torch.int64).reshape(-1, 2)
        self.heights = sizes[:, 0].repeat_interleave(counts)  # (T,) per object
        self.widths = sizes[:, 1].repeat_interleave(counts)
        numel = self.heights * self.widths
        self.offsets = numel.cumsum(0) - numel

    def sample(self, objects: Tensor, points: Tensor) -> Tensor:
        """objects: (P,) flat object indices; points: (P, N, 2) image-relative (x, y) in [0, 1]
        -> (P, N) float32 0/1, the value of the pixel containing each point."""
        h, w = self.heights[objects][:, None], self.widths[objects][:, None]
        col = (points[..., 0] * w).floor().long().clamp(min=0).minimum(w - 1)
        row = (points[..., 1] * h).floor().long().clamp(min=0).minimum(h - 1)
        index = self.offsets[objects][:, None] + row * w + col
        return self.buffer[index].float()


@torch.no_grad()
def uncertain_points(
    logits_at: Callable[[Tensor], Tensor],
    num_rows: int,
    num_points: int,
    oversample_ratio: float,
    importance_sample_ratio: float,
    device: torch.device,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Mask2Former's importance sampling: draw oversample_ratio * N uniform points per row, keep
    the importance_sample_ratio * N whose logits are closest to 0 (most uncertain), fill up with
    fresh uniform points.

    logits_at: (num_rows, K, 2) points -> (num_rows, K) mask logits
    returns:   (num_rows, num_points, 2) image-relative points in [0, 1]
    """
    num_sampled = int(num_points * oversample_ratio)
    candidates = torch.rand(num_rows, num_sampled, 2, device=device, generator=generator)
    uncertainty = -logits_at(candidates).abs()
    num_uncertain = int(importance_sample_ratio * num_points)
    num_random = num_points - num_uncertain
    index = uncertainty.topk(num_uncertain, dim=1).indices
    chosen = candidates.gather(1, index[..., None].expand(-1, -1, 2))
    if num_random > 0:
        fresh = torch.rand(num_rows, num_random, 2, device=device, generator=generator)
        chosen = torch.cat([chosen, fresh], 1)
    return chosen


def pixel_centres(height: int, width: int, device: torch.device | None = None) -> Tensor:
    """(height * width, 2) image-relative (x, y) of every pixel centre, row-major."""
    ys = (torch.arange(height, device=device, dtype=torch.float32) + 0.5) / height
    xs = (torch.arange(width, device=device, dtype=torch.float32) + 0.5) / width
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([grid_x.reshape(-1), grid_y.reshape(-1)], -1)
