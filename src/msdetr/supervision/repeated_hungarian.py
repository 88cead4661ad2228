"""Many-to-one Hungarian assignment (Align-DETR's mixed matcher): each target gets k queries.

Per image the DETR matching cost (Q, T) (see `hungarian`) is repeated k times along
the targets, (Q, k*T), and solved as one optimal assignment: every target receives
exactly k distinct queries (the k copies of a target compete for queries like
different targets do), a query serves at most one target. k = 1 is the ordinary
Hungarian matching.

As the released code, k is capped per image at int(0.5 * Q / T) so that at most half
of the queries are positive. Two deliberate differences from the released matcher,
both outside what real data reaches (T > Q / 4 objects in one image): the released
code lets one image's cap carry over to the next images of the batch, and an image
with T > Q / 2 targets gets no pairs at all there; here the cap is per image and at
least 1.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from msdetr.errors import MsdetrError
from msdetr.supervision.base import Assignment, LayerPredictions, Targets
from msdetr.supervision.hungarian import HungarianAssigner
from msdetr.supervision.targets import pad_targets


def capped_copies(k: int, num_queries: int, num_targets: int) -> int:
    """Queries per target for one image: k, at most int(0.5 * Q / T), at least 1."""
    if num_targets == 0:
        return k
    return max(1, min(k, int(num_queries * 0.5 / num_targets)))


class RepeatedHungarianAssigner:
    """Each target gets k queries by one optimal assignment on the repeated cost.

    hungarian: gives the (B, Q, T) matching cost (its cost weights, focal alpha / gamma).
    k: queries per target (capped per image, see the module docstring).

    Returns per image (pred_idx, target_idx), ordered by target index, k pairs per target.
    """

    def __init__(self, hungarian: HungarianAssigner, k: int) -> None:
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        self.hungarian = hungarian
        self.k = k

    @torch.no_grad()
    def __call__(self, predictions: LayerPredictions, targets: Targets) -> Assignment:
        """One layer: logits (B, Q, C), boxes (B, Q, 4) -> per image (pred_idx, target_idx)."""
        device = predictions.logits.device
        num_queries = predictions.logits.shape[1]
        padded = pad_targets(targets, device)
        if padded.max_count == 0:
            empty = torch.zeros(0, dtype=torch.int64, device=device)
            return [(empty, empty) for _ in targets]
        cost = self.hungarian.cost_matrix(predictions, padded).cpu().numpy()  # (B, Q, T)
        result = []
        for image, count in enumerate(padded.counts):
            row_cost = cost[image, :, :count]
            if not np.isfinite(row_cost).all():
                raise MsdetrError(
                    f"many-to-one assignment: image {image} of the batch: the matching cost has NaN or "
                    "inf values; check that image's target boxes, and lower the learning rate if the "
                    "model's predictions diverged"
                )
            copies = capped_copies(self.k, num_queries, count)
            pred_idx, column = linear_sum_assignment(np.tile(row_cost, (1, copies)))
            target_idx = column % max(count, 1)
            order = np.argsort(target_idx, kind="stable")
            pairs = torch.from_numpy(np.stack([pred_idx[order], target_idx[order]]).astype(np.int64))
            result.append(_to(pairs, device))
        return result


def _to(pairs: Tensor, device: torch.device) -> tuple[Tensor, Tensor]:
    pairs = pairs.to(device)
    return pairs[0], pairs[1]
