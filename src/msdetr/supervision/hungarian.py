"""One-to-one (Hungarian) assignment, as in DETR / Deformable DETR.

The matching cost of query q and target t is

    w_class * focal_cost(p_q[label_t]) + w_bbox * |box_q - box_t|_1 - w_giou * GIoU(box_q, box_t)
    [+ w_mask * BCE_points(mask_q, mask_t) + w_dice * dice_points(mask_q, mask_t)]   (mask head, optional)

with focal_cost(p) = alpha (1-p)^gamma (-log(p + 1e-8)) - (1-alpha) p^gamma (-log(1 - p + 1e-8)),
p the sigmoid class probability. The cost is built for the whole batch at once,
padded to the largest target count, in float32, then moved to the host once and
solved per image with scipy's `linear_sum_assignment`; `assign_layers` does all
decoder layers with one transfer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from msdetr.errors import MsdetrError
from msdetr.modeling.outputs import MaskPredictions
from msdetr.ops.boxes import pairwise_generalized_box_iou
from msdetr.supervision.base import Assignment, LayerPredictions, Targets
from msdetr.supervision.mask_cost import MaskMatchingCost
from msdetr.supervision.precision import autocast_disabled
from msdetr.supervision.targets import PaddedTargets, diverged_matching_error, layers_per_chunk, pad_targets

_LOG_EPS = 1e-8


def focal_matching_cost(prob: Tensor, alpha: float, gamma: float) -> Tensor:
    """Cost of calling a (query, class) pair positive, from its sigmoid probability (any shape)."""
    positive = alpha * (1 - prob) ** gamma * (-(prob + _LOG_EPS).log())
    negative = (1 - alpha) * prob**gamma * (-(1 - prob + _LOG_EPS).log())
    return positive - negative


@dataclass(eq=False)
class HungarianAssigner:
    """Optimal one-to-one assignment minimizing the DETR matching cost.

    cost_class, cost_bbox, cost_giou: weights of the three costs (official defaults 2 / 5 / 2).
    A zero `cost_class` skips the class term (the two-stage encoder matcher).
    focal_alpha, focal_gamma: of the class cost.
    iou_epsilon: added to the GIoU's union and enclosing area (`supervision.iou_epsilon`; 0: exact).
    mask_cost: optional extra cost term on masks (`MaskMatchingCost`), used when the predictions
        carry masks (mask head).

    Returns per image (pred_idx, target_idx) with min(Q, T) pairs, pred_idx
    increasing, on the predictions' device.
    """

    cost_class: float = 2.0
    cost_bbox: float = 5.0
    cost_giou: float = 2.0
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    mask_cost: MaskMatchingCost | None = None
    iou_epsilon: float = 0.0

    def __post_init__(self) -> None:
        if self.cost_class == 0 and self.cost_bbox == 0 and self.cost_giou == 0:
            raise MsdetrError(
                "supervision.matcher: all matching costs are 0; give at least one a positive weight"
            )

    @torch.no_grad()
    def cost_matrix(self, predictions: LayerPredictions, padded: PaddedTargets) -> Tensor:
        """(B, Q, T) float32 matching cost; columns past an image's target count are padding."""
        logits, boxes = predictions.logits, predictions.boxes
        with autocast_disabled(logits.device):
            boxes = boxes.detach() if boxes.dtype == torch.float32 else boxes.detach().float()
            cost = self.cost_bbox * torch.cdist(boxes, padded.boxes, p=1)
            if self.cost_class != 0:
                index = padded.labels[:, None, :].expand(-1, logits.shape[1], -1)
                prob = logits.detach().float().gather(2, index).sigmoid_()  # (B, Q, T)
                class_cost = focal_matching_cost(prob, self.focal_alpha, self.focal_gamma)
                cost = cost + self.cost_class * class_cost
            giou = pairwise_generalized_box_iou(boxes, padded.boxes, in_fmt="cxcywh", eps=self.iou_epsilon)
            cost = cost + self.cost_giou * -giou
        return cost

    def __call__(self, predictions: LayerPredictions, targets: Targets) -> Assignment:
        """One layer: logits (B, Q, C), boxes (B, Q, 4) -> per image (pred_idx, target_idx)."""
        return self.assign_layers(predictions.logits[None], predictions.boxes[None], targets,
                                  masks=predictions.masks)[0]

    @torch.no_grad()
    def layer_costs(self, logits: Tensor, boxes: Tensor, targets: Targets,
                    masks: MaskPredictions | None = None) -> tuple[np.ndarray, PaddedTargets] | None:
        """The host (L * B, Q, T) float32 costs of all layers (row l * B + b) and the padded targets,
        built together and moved to the host once; None when the batch has no target.
        logits (L, B, Q, C), boxes (L, B, Q, 4); masks: the layers' masks (query_embed (L, B, Q, M))."""
        num_layers, batch = logits.shape[:2]
        padded = pad_targets(targets, logits.device)
        if padded.max_count == 0:
            return None
        chunk = layers_per_chunk(num_layers, batch * logits.shape[2] * padded.max_count, logits.device)
        costs = []
        for start in range(0, num_layers, chunk):
            if chunk >= num_layers:  # all layers at once: no slicing
                flat = LayerPredictions(logits.flatten(0, 1), boxes.flatten(0, 1))
            else:
                flat = LayerPredictions(
                    logits[start : start + chunk].flatten(0, 1), boxes[start : start + chunk].flatten(0, 1)
                )
            cost = self.cost_matrix(flat, padded.repeat(flat.logits.shape[0] // batch))
            if self.mask_cost is not None and masks is not None:  # mask head: + mask/dice cost
                layer_masks = MaskPredictions(masks.query_embed[start : start + chunk], masks.pixel_embed,
                                              masks.stride)
                cost = cost + self.mask_cost(layer_masks, targets, padded.max_count).flatten(0, 1)
            costs.append(cost)
        return (costs[0] if len(costs) == 1 else torch.cat(costs)).cpu().numpy(), padded

    @torch.no_grad()
    def assign_layers(self, logits: Tensor, boxes: Tensor, targets: Targets,
                      masks: MaskPredictions | None = None) -> list[Assignment]:
        """All decoder layers at once: logits (L, B, Q, C), boxes (L, B, Q, 4) -> one assignment
        per layer. The costs of all layers are built together and moved to the host once.
        masks: the layers' masks (query_embed (L, B, Q, M)), for the optional mask cost."""
        costs = self.layer_costs(logits, boxes, targets, masks)
        return solve_layers(costs, logits.shape[0], len(targets), logits.device, linear_sum_assignment,
                            "one-to-one")


def solve_layers(costs: tuple[np.ndarray, PaddedTargets] | None, num_layers: int, batch: int,
                 device: torch.device, solve, assignment: str) -> list[Assignment]:
    """Per layer and image, `solve(row_cost)` on the (Q, T_b) host cost of `HungarianAssigner.layer_costs`
    -> (pred_idx, target_idx) numpy arrays; the results back on `device` with at most one transfer.
    A non-finite cost raises (`diverged_matching_error`, naming `assignment`)."""
    if costs is None:  # no target in the batch
        empty = torch.zeros(0, dtype=torch.int64, device=device)
        return [[(empty, empty) for _ in range(batch)] for _ in range(num_layers)]
    cost, padded = costs
    rows, cols = [], []
    for row in range(num_layers * batch):
        layer, image = divmod(row, batch)
        row_cost = cost[row, :, : padded.counts[image]]
        if not np.isfinite(row_cost).all():
            raise diverged_matching_error(assignment, image, layer if num_layers > 1 else None,
                                          "matching cost has NaN or inf values")
        row_pred, row_target = solve(row_cost)
        rows.append(row_pred)
        cols.append(row_target)
    if device.type == "cpu":  # host tensors as they are: no copy, no operator per row
        per_row = [(torch.from_numpy(r.astype(np.int64)), torch.from_numpy(c.astype(np.int64)))
                   for r, c in zip(rows, cols)]
    else:  # one transfer back to the device
        sizes = [len(r) for r in rows]
        pairs = torch.from_numpy(np.stack([np.concatenate(rows), np.concatenate(cols)]).astype(np.int64))
        pred_idx, target_idx = pairs.to(device).split(1)
        per_row = list(zip(pred_idx[0].split(sizes), target_idx[0].split(sizes)))
    return [per_row[layer * batch : (layer + 1) * batch] for layer in range(num_layers)]
