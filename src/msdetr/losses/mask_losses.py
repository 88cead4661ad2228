"""Mask losses on matched pairs, at sampled points (Mask2Former): sigmoid BCE and dice.

For every assignment pair p (query q of image b supervised by target t) and its N points:

    mask = sum over pairs of mean over points of BCE(logit_q(x), mask_t(x))      / num_targets
    dice = sum over pairs of 1 - (2 sum s t + 1) / (sum s + sum t + 1), s = sigmoid(logit) / num_targets

The points are Mask2Former's: 3N uniform candidates, the 0.75 N most uncertain (logit closest
to 0) kept, 0.25 N fresh uniform ones added (N = 12544 by default); the same pair's prediction and
target are read at the same points (`msdetr.ops.point_sampling`). Memory: (B, P_b, H_m, W_m) logits of the
matched queries at the mask map's resolution (stride 8 or 4), then (P, N) point values; no
full-resolution mask is ever built, for targets or predictions. All math in float32.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from msdetr.errors import MsdetrError
from msdetr.modeling.outputs import MaskPredictions
from msdetr.ops.point_sampling import FlatMasks, sample_maps, to_map_grid, uncertain_points
from msdetr.supervision.pairs import FlatPairs, flatten


def pair_mask_logits(masks: MaskPredictions, pairs: FlatPairs) -> Tensor:
    """(P, H_m, W_m) dense mask logits (float32, map resolution) of the P image-sorted pairs' queries.

    masks: one layer (query_embed (1, B, Q, M) or (B, Q, M)). Computed per image with one batched
    matrix product over the pairs of that image (padded to the image with most pairs).
    """
    query_embed = masks.query_embed[-1] if masks.query_embed.dim() == 4 else masks.query_embed
    pixel_embed = masks.pixel_embed.float()
    batch, dim, height, width = pixel_embed.shape
    num_pairs = len(pairs)
    if num_pairs == 0:
        return pixel_embed.new_zeros(0, height, width)
    counts = torch.bincount(pairs.image, minlength=batch)
    starts = counts.cumsum(0) - counts
    rank = torch.arange(num_pairs, device=pairs.image.device) - starts[pairs.image]
    per_image = int(counts.max())
    embed = pixel_embed.new_zeros(batch, per_image, dim)
    embed[pairs.image, rank] = query_embed[pairs.image, pairs.query].float()
    maps = torch.bmm(embed, pixel_embed.flatten(2))  # (B, per_image, H_m * W_m)
    return maps[pairs.image, rank].view(num_pairs, height, width)


def sigmoid_bce_sum(logits: Tensor, targets: Tensor) -> Tensor:
    """(P, N) point logits and 0/1 targets -> sum over pairs of the mean BCE over points."""
    if logits.numel() == 0:
        return logits.sum()
    return F.binary_cross_entropy_with_logits(logits, targets, reduction="none").mean(1).sum()


def dice_sum(logits: Tensor, targets: Tensor) -> Tensor:
    """(P, N) point logits and 0/1 targets -> sum over pairs of 1 - dice (smoothed by 1)."""
    prob = logits.sigmoid()
    numerator = 2 * (prob * targets).sum(1)
    denominator = prob.sum(1) + targets.sum(1)
    return (1 - (numerator + 1) / (denominator + 1)).sum()


@dataclass
class PointSampling:
    """Mask2Former's defaults: 12544 points (112 x 112), oversample 3, 75% by uncertainty."""

    num_points: int = 12544
    oversample_ratio: float = 3.0
    importance_sample_ratio: float = 0.75


class MaskLoss:
    """The `mask` and `dice` terms of one supervision task (sums; the criterion divides by N).

    sampling: how many points and how they are chosen.
    generator: random source of the points (None: torch's global generator).
    """

    def __init__(self, sampling: PointSampling | None = None, generator: torch.Generator | None = None):
        self.sampling = sampling or PointSampling()
        self.generator = generator
        self._flat: tuple[tuple[int, ...], FlatMasks] | None = None

    def target_masks(self, targets: list[dict]) -> FlatMasks:
        """The targets' masks in one flat buffer (built once per batch, shared by all tasks)."""
        for i, t in enumerate(targets):
            if "masks" not in t:
                raise MsdetrError(
                    f"targets: image {i}: no 'masks' but the model has a mask head; load the data "
                    "with masks (data.masks: true, set automatically for mask models by msdetr train)"
                )
            if t["masks"].dim() != 3 or t["masks"].shape[0] != len(t["labels"]):
                raise MsdetrError(
                    f"targets: image {i}: masks {tuple(t['masks'].shape)} for {len(t['labels'])} labels; "
                    "expected (n, H, W) with one mask per object"
                )
        key = tuple(id(t["masks"]) for t in targets)
        if self._flat is None or self._flat[0] != key:
            self._flat = (key, FlatMasks([t["masks"] for t in targets]))
        return self._flat[1]

    def __call__(self, masks: MaskPredictions, pairs: FlatPairs, flat_target: Tensor, targets: list[dict],
                 points: Tensor | None = None) -> dict[str, Tensor]:
        """masks: one layer's predictions; pairs: image-sorted; flat_target: (P,) batch-wide target
        index of each pair; points: fixed (N, 2) image-relative points for every pair instead of
        the random ones (tests, dense checks). Returns {"mask": sum, "dice": sum}."""
        flat = self.target_masks(targets)
        maps = pair_mask_logits(masks, pairs)  # (P, H_m, W_m)
        sizes = torch.stack([flat.heights[flat_target], flat.widths[flat_target]], -1).float()
        map_size = tuple(maps.shape[-2:])

        def logits_at(pts: Tensor, source: Tensor = maps) -> Tensor:
            return sample_maps(source, to_map_grid(pts, sizes, map_size, masks.stride))

        if points is None:
            s = self.sampling
            points = uncertain_points(lambda pts: logits_at(pts, maps.detach()), len(pairs), s.num_points,
                                      s.oversample_ratio, s.importance_sample_ratio, maps.device, self.generator)
        else:
            points = points.to(maps.device, torch.float32).expand(len(pairs), -1, -1)
        point_logits = logits_at(points)
        point_targets = flat.sample(flat_target, points)
        return {"mask": sigmoid_bce_sum(point_logits, point_targets), "dice": dice_sum(point_logits, point_targets)}


    def task_terms(self, tasks: list, device: torch.device) -> Tensor:
        """(2, T) float32 sums: the `mask` and `dice` terms of T supervision tasks with the same
        targets (the criterion's mask groups; undivided). Each task's predictions carry masks."""
        targets = tasks[0].targets
        counts = torch.tensor([len(t["labels"]) for t in targets], device=device)
        offsets = counts.cumsum(0) - counts
        columns = []
        for task in tasks:  # one task per decoder layer: a short loop over layers
            pairs = flatten(task.assignment, device)
            terms = self(task.predictions.masks, pairs, offsets[pairs.image] + pairs.target, targets)
            columns.append(torch.stack([terms["mask"], terms["dice"]]))
        return torch.stack(columns, dim=1)
