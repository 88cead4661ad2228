"""The criterion: losses of the supervision tasks a strategy produces, weighted per stream.

For every task (stream, layer) with assignment pairs P and N = number of targets
in the batch (averaged over ranks, at least 1):

    cls  = sum over all queries and classes of the sigmoid focal loss / N
           (one-hot targets: a matched query is positive for its target's class;
           equal to the official `loss_ce`, the per-query mean times Q)
    bbox = sum over pairs of |box_pred - box_target|_1 / N
    giou = sum over pairs of (1 - GIoU) / N
    mask, dice (tasks whose predictions carry masks, with a `mask_loss`): see `losses.mask_losses`

total = sum over tasks and terms of weights[stream].<term> * term. Logged values
(class error on each stream's final layer, cardinality error) carry no gradient.
All math runs in float32, also under autocast. Term names: see `names`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from msdetr.config.supervision import LossWeights
from msdetr.errors import MsdetrError
from msdetr.losses.functional import focal_classification_sum, giou_box_sum, l1_box_sum
from msdetr.losses.mask_losses import MaskLoss
from msdetr.losses.metrics import cardinality_error, class_error
from msdetr.losses.names import term_name, to_official_name
from msdetr.losses.normalization import num_targets_across_ranks
from msdetr.modeling.outputs import DetectorOutput
from msdetr.supervision.base import SupervisionStrategy, SupervisionTask, Targets
from msdetr.supervision.pairs import flatten, last_occurrence
from msdetr.supervision.precision import autocast_disabled
from msdetr.supervision.targets import check_targets


@dataclass
class LossResult:
    """What the criterion returns.

    total: scalar float32, the weighted sum to back-propagate.
    terms: unweighted loss terms by name (`one_to_one.layer2.cls`, ...), with gradient.
    logs: logging values by name (`one_to_one.layer5.class_error`, ...), no gradient.
    num_targets: the normalizer N used for every term.
    """

    total: Tensor
    terms: dict[str, Tensor] = field(default_factory=dict)
    logs: dict[str, Tensor] = field(default_factory=dict)
    num_targets: Tensor | None = None

    def official(self, num_decoder_layers: int) -> dict[str, Tensor]:
        """Terms and logs under their official names (those without an official equivalent are left out)."""
        named = {}
        for name, value in {**self.terms, **self.logs}.items():
            official = to_official_name(name, num_decoder_layers)
            if official is not None:
                named[official] = value
        return named


class Criterion(nn.Module):
    """Computes `LossResult` for a detector output and its targets.

    strategy: produces the supervision tasks (assignments included).
    weights: loss weights per stream name; every stream a task uses needs an entry.
    num_classes: C of the classifier (targets are checked against it).
    focal_alpha, focal_gamma: of the focal classification loss.
    mask_loss: the `mask` and `dice` terms of tasks whose predictions carry masks (mask head).
    """

    def __init__(
        self,
        strategy: SupervisionStrategy,
        weights: Mapping[str, LossWeights],
        num_classes: int,
        focal_alpha: float = 0.25,
        focal_gamma: float = 2.0,
        mask_loss: MaskLoss | None = None,
    ) -> None:
        super().__init__()
        self.strategy = strategy
        self.weights = dict(weights)
        self.num_classes = num_classes
        self.focal_alpha = focal_alpha
        self.focal_gamma = focal_gamma
        self.mask_loss = mask_loss

    def forward(self, output: DetectorOutput, targets: Targets) -> LossResult:
        reference = output.logits
        batch_size, device = reference.shape[0], reference.device
        check_targets(targets, batch_size, self.num_classes)
        tasks = self.strategy.plan(output, targets)
        missing = sorted({task.stream for task in tasks} - set(self.weights))
        if missing:
            raise MsdetrError(
                f"supervision config: loss_weights: no weights for stream(s) {missing}; add them"
            )
        with autocast_disabled(device):
            num_targets = num_targets_across_ranks(targets, device)
            result = LossResult(total=torch.zeros((), device=device), num_targets=num_targets)
            for task in tasks:
                self._add_task(task, num_targets, result)
        return result

    def _add_task(self, task: SupervisionTask, num_targets: Tensor, result: LossResult) -> None:
        logits, boxes = task.predictions.logits, task.predictions.boxes
        batch, num_queries = logits.shape[:2]
        device = logits.device
        pairs = flatten(task.assignment, device)
        offsets = torch.tensor([0] + [len(t["labels"]) for t in task.targets], device=device).cumsum(0)[:-1]
        flat_target = offsets[pairs.image] + pairs.target
        target_boxes = torch.cat([t["boxes"] for t in task.targets]).to(device, torch.float32)[flat_target]
        target_labels = torch.cat([t["labels"] for t in task.targets]).to(device, torch.int64)[flat_target]

        # A query given to several targets takes the class of its last pair.
        winner = last_occurrence(pairs.image, pairs.query, batch, num_queries)
        onehot = torch.zeros(logits.shape, dtype=torch.float32, device=device)
        onehot[pairs.image[winner], pairs.query[winner], target_labels[winner]] = 1.0

        matched_boxes = boxes[pairs.image, pairs.query]
        losses = {
            "cls": focal_classification_sum(logits, onehot, self.focal_alpha, self.focal_gamma) / num_targets,
            "bbox": l1_box_sum(matched_boxes, target_boxes) / num_targets,
            "giou": giou_box_sum(matched_boxes, target_boxes) / num_targets,
        }
        if self.mask_loss is not None and task.predictions.masks is not None:  # mask head: mask, dice
            mask_terms = self.mask_loss(task.predictions.masks, pairs, flat_target, task.targets)
            losses.update({term: value / num_targets for term, value in mask_terms.items()})
        weights = self.weights[task.stream]
        for term, value in losses.items():
            result.terms[term_name(task.name, term)] = value
            result.total = result.total + getattr(weights, term) * value

        with torch.no_grad():
            if task.log_class_error:
                matched_logits = logits.detach()[pairs.image, pairs.query]
                result.logs[term_name(task.name, "class_error")] = class_error(matched_logits, target_labels)
            counts = torch.tensor([len(t["labels"]) for t in task.targets], device=device)
            result.logs[term_name(task.name, "cardinality_error")] = cardinality_error(
                logits.detach(), counts
            )
