"""The criterion: losses of the supervision tasks a strategy produces, weighted per stream.

For every task (stream, layer) with assignment pairs P and N = number of targets
in the batch (averaged over ranks, and over the micro-batches of an accumulated step
when `train_step` passes `target_count`; at least 1):

    cls  = sum over all queries and classes of the sigmoid focal loss / N
           (one-hot targets: a matched query is positive for its target's class;
           equal to the official `loss_ce`, the per-query mean times Q)
    bbox = sum over pairs of |box_pred - box_target|_1 / N
    giou = sum over pairs of (1 - GIoU) / N
    mask, dice (tasks whose predictions carry masks, with a `mask_loss`): see `losses.mask_losses`

Per stream the classification loss may instead be Align-DETR's IoU-aware BCE
(`iou_aware`), and a task may weight its pairs (prime-sample weights, every term)
or scale its normalizer (DAC-DETR's branch); see `SupervisionTask`. `iou_epsilon`
(`supervision.iou_epsilon`, 0 = exact) is added to the union and enclosing area of every
IoU / GIoU of the losses (and, through `build_criterion`, of the Hungarian matching costs).

total = sum over tasks and terms of weights[stream].<term> * term. Logged values
(class error on each stream's final layer, cardinality error) carry no gradient.
All math runs in float32, also under autocast. Term names: see `names`.

The tasks are computed in groups (`batched`): all tasks with the same targets and
prediction shapes (every decoder layer of both MS-DETR streams) share one focal / L1 /
GIoU computation over their concatenated pairs, with no device-to-host synchronization;
any strategy's tasks get this, nothing is asked of them. Tasks whose losses differ from
that arithmetic (an IoU-aware classification loss, prime-sample pair weights, mask losses)
are computed one by one (`_add_task`).
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from msdetr.config.supervision import IouAwareConfig, LossWeights
from msdetr.errors import MsdetrError
from msdetr.losses.batched import _WeightCache, group_losses, group_pairs, group_tasks, stack_predictions
from msdetr.losses.functional import focal_classification_sum, giou_box_sum, l1_box_sum
from msdetr.losses.iou_aware import iou_aware_classification_sum, pair_quality, prime_sample_weights
from msdetr.losses.mask_losses import MaskLoss
from msdetr.losses.metrics import cardinality_error, class_error
from msdetr.losses.names import LOG_TERMS, LOSS_TERMS, term_name, to_official_name
from msdetr.losses.normalization import target_count_across_ranks, task_normalizer
from msdetr.losses.term_table import TermTable, host_values
from msdetr.modeling.outputs import DetectorOutput
from msdetr.supervision.base import SupervisionStrategy, SupervisionTask, Targets
from msdetr.supervision.pairs import flatten, last_occurrence
from msdetr.supervision.precision import autocast_disabled
from msdetr.supervision.targets import check_targets


@dataclass
class LossResult:
    """What the criterion returns.

    total: scalar float32, the weighted sum to back-propagate.
    terms: unweighted loss terms by name (`one_to_one.layer2.cls`, ...), with gradient
        (a mapping name -> 0-d tensor; the criterion gives a `TermTable`, which splits its
        stacked values into named tensors on first access only).
    logs: logging values by name (`one_to_one.layer5.class_error`, ...), no gradient.
    num_targets: the normalizer N used for every term.
    """

    total: Tensor
    terms: MutableMapping[str, Tensor] = field(default_factory=dict)
    logs: MutableMapping[str, Tensor] = field(default_factory=dict)
    num_targets: Tensor | None = None

    def term_values(self) -> dict[str, float]:
        """The terms as floats (detached), with one device-to-host transfer for all of them."""
        return host_values(self.terms)

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
    classification_losses: per stream, "focal" (default) or "iou_aware" (Align-DETR, see
        `msdetr.losses.iou_aware`; its alpha / gamma from `iou_aware`). Tasks with `rank_tau`
        weight their pairs (all terms), tasks with `normalizer_scale` divide by that times N.
    mask_loss: the `mask` and `dice` terms of tasks whose predictions carry masks (mask head).
    iou_epsilon: added to the union and the enclosing area of the GIoU loss and the IoU-aware
        quality's IoU (released Align-DETR, detrex's box functions: 1e-6; 0: exact).
    """

    def __init__(
        self,
        strategy: SupervisionStrategy,
        weights: Mapping[str, LossWeights],
        num_classes: int,
        focal_alpha: float = 0.25,
        focal_gamma: float = 2.0,
        classification_losses: Mapping[str, str] | None = None,
        iou_aware: IouAwareConfig | None = None,
        mask_loss: MaskLoss | None = None,
        iou_epsilon: float = 0.0,
    ) -> None:
        super().__init__()
        self.strategy = strategy
        self.weights = dict(weights)
        self.num_classes = num_classes
        self.focal_alpha = focal_alpha
        self.focal_gamma = focal_gamma
        self._weights = _WeightCache()
        # the tensor arithmetic of a group's losses; `compile_criterion` replaces it by its compiled form
        self.dense_losses = None
        # Align-DETR / DAC-DETR (issue 17): classification loss per stream ("focal" when absent)
        self.classification_losses = dict(classification_losses or {})
        self.iou_aware = iou_aware or IouAwareConfig()
        self.mask_loss = mask_loss
        self.iou_epsilon = iou_epsilon

    def forward(self, output: DetectorOutput, targets: Targets, target_count: Tensor | None = None) -> LossResult:
        """target_count: scalar, the mean target count to normalize by, not yet clamped (`train_step`
        gives the step's, over ranks and micro-batches: `losses.normalization.step_target_count`);
        None: this batch's, averaged over ranks."""
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
            if target_count is None:
                target_count = target_count_across_ranks(targets, device)
            target_count = target_count.to(device, torch.float32)
            num_targets = target_count.clamp(min=1)
            result = LossResult(
                total=torch.zeros((), device=device), terms=TermTable(), logs=TermTable(), num_targets=num_targets
            )
            single = [task for task in tasks if self._needs_own_computation(task)]
            batched = [task for task in tasks if not self._needs_own_computation(task)]
            result.terms.reserve([term_name(task.name, term) for task in batched for term in LOSS_TERMS])
            result.logs.reserve([
                term_name(task.name, log) for task in batched for log in LOG_TERMS
                if log != "class_error" or task.log_class_error
            ])
            totals = []
            for indices in group_tasks(batched):  # tasks sharing targets and shapes: one computation
                group = [batched[i] for i in indices]
                logits, boxes = stack_predictions(group, output)
                weights = self._weights.get(tuple(task.stream for task in group), self.weights, logits.device)
                flagged = [task.log_class_error for task in group]
                pairs = group_pairs(group, logits.shape[1], logits.device)
                first = group[0]  # one normalizer per group (see `group_tasks`)
                normalizer = task_normalizer(target_count, num_targets, first.normalizer_scale,
                                             first.clamp_after_scale)
                losses = group_losses(
                    logits, boxes, pairs, normalizer, weights, self.focal_alpha, self.focal_gamma, any(flagged),
                    dense=self.dense_losses, iou_epsilon=self.iou_epsilon,
                )
                totals.append(losses.total)
                for term, values in zip(LOSS_TERMS, losses.terms.unbind(0)):
                    result.terms.add_block([term_name(task.name, term) for task in group], values)
                if any(flagged):
                    names = [term_name(t.name, "class_error") if flag else None for t, flag in zip(group, flagged)]
                    result.logs.add_block(names, losses.class_error)
                names = [term_name(task.name, "cardinality_error") for task in group]
                result.logs.add_block(names, losses.cardinality_error)
            for task in single:
                normalizer = task_normalizer(target_count, num_targets, task.normalizer_scale,
                                             task.clamp_after_scale)
                totals.append(self._add_task(task, normalizer, result))
            if totals:
                result.total = totals[0] if len(totals) == 1 else torch.stack(totals).sum()
        return result

    def _needs_own_computation(self, task: SupervisionTask) -> bool:
        """Tasks the batched arithmetic does not cover: IoU-aware classification, pair weights, masks."""
        return (
            task.rank_tau is not None
            or self.classification_losses.get(task.stream, "focal") != "focal"
            or (self.mask_loss is not None and task.predictions.masks is not None)
        )

    def _add_task(self, task: SupervisionTask, normalizer: Tensor, result: LossResult) -> Tensor:
        """One task's terms and logs into `result` (each divided by the scalar `normalizer`);
        returns its weighted total (scalar)."""
        logits, boxes = task.predictions.logits, task.predictions.boxes
        batch, num_queries = logits.shape[:2]
        device = logits.device
        pairs = flatten(task.assignment, device)
        offsets = torch.tensor([0] + [len(t["labels"]) for t in task.targets], device=device).cumsum(0)[:-1]
        flat_target = offsets[pairs.image] + pairs.target
        target_boxes = torch.cat([t["boxes"] for t in task.targets]).to(device, torch.float32)[flat_target]
        target_labels = torch.cat([t["labels"] for t in task.targets]).to(device, torch.int64)[flat_target]
        logits, boxes = logits.float(), boxes.float()

        matched_boxes = boxes[pairs.image, pairs.query]
        # Align-DETR / DAC-DETR: IoU-aware loss, prime-sample weights
        iou_aware = self.classification_losses.get(task.stream, "focal") == "iou_aware"
        pair_weights = quality = None
        if iou_aware or task.rank_tau is not None:
            matched_logits = logits[pairs.image, pairs.query, target_labels]
            quality = pair_quality(matched_logits, matched_boxes, target_boxes, self.iou_aware.alpha,
                                   self.iou_epsilon)
        if task.rank_tau is not None:
            pair_weights = prime_sample_weights(quality, pairs.image, pairs.target, task.rank_tau)
        if iou_aware:
            positive_target = quality if pair_weights is None else quality * pair_weights
            cls = iou_aware_classification_sum(
                logits, pairs.image, pairs.query, target_labels, positive_target, self.iou_aware.gamma
            )
        else:
            # A query given to several targets takes the class of its last pair.
            winner = last_occurrence(pairs.image, pairs.query, batch, num_queries)
            onehot = torch.zeros(logits.shape, dtype=torch.float32, device=device)
            onehot[pairs.image[winner], pairs.query[winner], target_labels[winner]] = 1.0
            cls = focal_classification_sum(logits, onehot, self.focal_alpha, self.focal_gamma)
        losses = {
            "cls": cls / normalizer,
            "bbox": l1_box_sum(matched_boxes, target_boxes, pair_weights) / normalizer,
            "giou": giou_box_sum(matched_boxes, target_boxes, pair_weights, self.iou_epsilon) / normalizer,
        }
        if self.mask_loss is not None and task.predictions.masks is not None:  # mask head: mask, dice
            mask_terms = self.mask_loss(task.predictions.masks, pairs, flat_target, task.targets)
            losses.update({term: value / normalizer for term, value in mask_terms.items()})
        weights = self.weights[task.stream]
        total = torch.zeros((), device=device)
        for term, value in losses.items():
            result.terms[term_name(task.name, term)] = value
            total = total + getattr(weights, term) * value

        with torch.no_grad():
            if task.log_class_error:
                matched_logits = logits.detach()[pairs.image, pairs.query]
                result.logs[term_name(task.name, "class_error")] = class_error(matched_logits, target_labels)
            counts = torch.tensor([len(t["labels"]) for t in task.targets], device=device)
            result.logs[term_name(task.name, "cardinality_error")] = cardinality_error(logits.detach(), counts)
        return total
