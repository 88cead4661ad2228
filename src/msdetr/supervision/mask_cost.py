"""Mask terms of the one-to-one matching cost (Mask2Former): point-sampled BCE and dice.

For query q and target t of an image, at N uniform random points x of that image (the same
points for all its queries and targets):

    bce(q, t)  = mean over x of BCE(logit_q(x), mask_t(x))
    dice(q, t) = 1 - (2 sum s_q m_t + 1) / (sum s_q + sum m_t + 1),   s_q = sigmoid(logit_q)

cost = cost_mask * bce + cost_dice * dice, added to the box/class cost of `HungarianAssigner`.
The query logits at the points come from the pixel embeddings sampled once per image
((B, M, N)), so nothing scales with the image size; computed layer by layer (B, Q, N), float32.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn.utils.rnn import pad_sequence

from msdetr.modeling.outputs import MaskPredictions
from msdetr.ops.point_sampling import FlatMasks, sample_pixel_embed, to_map_grid
from msdetr.supervision.base import Targets


class MaskMatchingCost:
    """cost_mask, cost_dice: weights; num_points: N; generator: random source of the points."""

    def __init__(self, cost_mask: float = 5.0, cost_dice: float = 5.0, num_points: int = 12544,
                 generator: torch.Generator | None = None):
        self.cost_mask = cost_mask
        self.cost_dice = cost_dice
        self.num_points = num_points
        self.generator = generator

    @torch.no_grad()
    def __call__(self, masks: MaskPredictions, targets: Targets, max_count: int) -> Tensor:
        """masks: query_embed (L, B, Q, M) -> (L, B, Q, max_count) float32 cost; columns past an
        image's target count are 0 (padding)."""
        query_embed = masks.query_embed.detach().float()
        pixel_embed = masks.pixel_embed.detach().float()
        num_layers, batch, num_queries = query_embed.shape[:3]
        device = query_embed.device
        flat = FlatMasks([t["masks"].to(device) for t in targets])
        sizes = torch.tensor([list(t["masks"].shape[-2:]) for t in targets], device=device, dtype=torch.float32)
        points = torch.rand(batch, self.num_points, 2, device=device, generator=self.generator)
        grid = to_map_grid(points, sizes, tuple(pixel_embed.shape[-2:]), masks.stride)
        pixel_at_points = sample_pixel_embed(pixel_embed, grid)  # (B, M, N)

        counts = torch.tensor([len(t["labels"]) for t in targets], device=device)
        objects = torch.arange(int(counts.sum()), device=device)
        object_image = torch.repeat_interleave(torch.arange(batch, device=device), counts)
        object_masks = flat.sample(objects, points[object_image])  # (T_all, N)
        target = pad_sequence(list(object_masks.split(counts.tolist())), batch_first=True)  # (B, T, N)
        if target.shape[1] < max_count:
            target = F.pad(target, (0, 0, 0, max_count - target.shape[1]))
        target_sum = target.sum(-1)  # (B, T)

        costs = []
        for layer in range(num_layers):  # (B, Q, N) at a time
            logits = torch.bmm(query_embed[layer], pixel_at_points)
            cost = logits.new_zeros(batch, num_queries, max_count)
            if self.cost_mask:
                positive = F.softplus(-logits)  # BCE against 1
                negative = F.softplus(logits)   # BCE against 0
                bce = (torch.bmm(positive, target.transpose(1, 2))
                       + torch.bmm(negative, (1 - target).transpose(1, 2))) / self.num_points
                cost = cost + self.cost_mask * bce
            if self.cost_dice:
                prob = logits.sigmoid()
                numerator = 2 * torch.bmm(prob, target.transpose(1, 2))
                denominator = prob.sum(-1)[:, :, None] + target_sum[:, None, :]
                cost = cost + self.cost_dice * (1 - (numerator + 1) / (denominator + 1))
            costs.append(cost)
        return torch.stack(costs)
