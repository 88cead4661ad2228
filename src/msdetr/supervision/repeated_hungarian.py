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

from msdetr.supervision.base import Assignment, LayerPredictions, Targets
from msdetr.supervision.hungarian import HungarianAssigner, solve_layers


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
        return self.assign_layers(predictions.logits[None], predictions.boxes[None], targets)[0]

    @torch.no_grad()
    def assign_layers(self, logits: Tensor, boxes: Tensor, targets: Targets) -> list[Assignment]:
        """All decoder layers at once: logits (L, B, Q, C), boxes (L, B, Q, 4) -> one assignment per
        layer, with one host transfer for the costs of all layers (`HungarianAssigner.layer_costs`)."""
        costs = self.hungarian.layer_costs(logits, boxes, targets)
        return solve_layers(costs, logits.shape[0], len(targets), logits.device, self._solve, "many-to-one")

    def _solve(self, row_cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(Q, T) host cost of one image -> (pred_idx, target_idx), ordered by target, k pairs per target."""
        num_queries, count = row_cost.shape
        copies = capped_copies(self.k, num_queries, count)
        pred_idx, column = linear_sum_assignment(np.tile(row_cost, (1, copies)))
        target_idx = column % max(count, 1)
        order = np.argsort(target_idx, kind="stable")
        return pred_idx[order], target_idx[order]
