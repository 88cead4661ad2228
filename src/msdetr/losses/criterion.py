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

Per stream the classification term is chosen from a registry (`classification`: focal, Align-DETR's
IoU-aware BCE `iou_aware`, ...); a task may weight its pairs (prime-sample weights: the box terms,
and the IoU-aware positive targets) or scale its normalizer (hybrid kN, group GN, denoising, DAC
3N); see `SupervisionTask` and `normalization.task_normalizer`. `iou_epsilon`
(`supervision.iou_epsilon`, 0 = exact) is added to the union and enclosing area of every
IoU / GIoU of the losses (and, through `build_criterion`, of the Hungarian matching costs).

total = sum over tasks and terms of weights[stream].<term> * term. Logged values
(class error on each stream's final layer, cardinality error) carry no gradient.
All math runs in float32, also under autocast. Term names: see `names`.

Every task goes through one path (`batched`): tasks with the same targets, prediction shapes,
normalizer, classification term, pair weighting and mask supervision (e.g. every decoder layer
of both MS-DETR streams) form a group that shares one computation over their concatenated
pairs, with no device-to-host synchronization (`dense_group_losses`, which `train.compile`
compiles); any strategy's tasks get this, nothing is asked of them.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from msdetr.config.supervision import IouAwareConfig, LossWeights
from msdetr.errors import MsdetrError
from msdetr.losses.batched import _WeightCache, group_losses, group_pairs, group_tasks, stack_predictions
from msdetr.losses.classification import ClassificationSettings, classification_term
from msdetr.losses.mask_losses import MaskLoss
from msdetr.losses.names import LOG_TERMS, LOSS_TERMS, MASK_TERMS, term_name, to_official_name
from msdetr.losses.normalization import target_count_across_ranks, task_normalizer
from msdetr.losses.term_table import TermTable, host_values
from msdetr.modeling.outputs import DetectorOutput
from msdetr.supervision.base import SupervisionStrategy, SupervisionTask, Targets
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
    num_targets: N = max(mean target count, 1), the base normalizer; each task divides by
        its `normalization.task_normalizer` of the count (N for most tasks; k N for H-DETR's
        one-to-many branch, G N for Group DETR, the group count times N for denoising, 3 N for
        DAC-DETR's branch).
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
    classification_losses: per stream, a registered classification term (`losses.classification`):
        "focal" (default) or "iou_aware" (Align-DETR, see `msdetr.losses.iou_aware`; its alpha /
        gamma from `iou_aware`). Tasks with `rank_tau` weight their pairs, tasks with
        `normalizer_scale` divide by that times N.
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
        settings = ClassificationSettings(focal_alpha, focal_gamma, self.iou_aware.gamma)
        names = {"focal", *self.classification_losses.values()}
        self._terms = {name: classification_term(name, settings) for name in names}
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
            keys = [self._group_key(task) for task in tasks]
            groups = group_tasks(tasks, keys)  # tasks sharing targets, shapes, ...: one computation
            result.terms.reserve([
                term_name(task.name, term) for task, key in zip(tasks, keys) for term in LOSS_TERMS + key[1]
            ])
            result.logs.reserve([
                term_name(task.name, log) for task in tasks for log in LOG_TERMS
                if log != "class_error" or task.log_class_error
            ])
            totals = []
            for indices in groups:
                group = [tasks[i] for i in indices]
                totals.append(self._add_group(group, keys[indices[0]], output, target_count, num_targets, result))
            if totals:
                result.total = totals[0] if len(totals) == 1 else torch.stack(totals).sum()
        return result

    def _group_key(self, task: SupervisionTask) -> tuple[str, tuple[str, ...]]:
        """(classification term name, extra loss terms) of a task: part of its group key."""
        with_masks = self.mask_loss is not None and task.predictions.masks is not None
        return self.classification_losses.get(task.stream, "focal"), MASK_TERMS if with_masks else ()

    def _add_group(self, group: list[SupervisionTask], key: tuple[str, tuple[str, ...]], output: DetectorOutput,
                   target_count: Tensor, num_targets: Tensor, result: LossResult) -> Tensor:
        """The terms and logs of a group of tasks (see `batched.group_tasks`) into `result`;
        returns their weighted total (scalar)."""
        term_name_of_cls, extra_terms = key
        logits, boxes = stack_predictions(group, output)
        streams = tuple(task.stream for task in group)
        weights = self._weights.get(streams, self.weights, logits.device, LOSS_TERMS)
        flagged = [task.log_class_error for task in group]
        pairs = group_pairs(group, logits.shape[1], logits.device)
        first = group[0]  # one normalizer per group (see `group_tasks`)
        normalizer = task_normalizer(target_count, num_targets, first.normalizer_scale, first.clamp_after_scale)
        losses = group_losses(
            logits, boxes, pairs, normalizer, weights, self._terms[term_name_of_cls], any(flagged),
            dense=self.dense_losses, iou_epsilon=self.iou_epsilon, rank_tau=first.rank_tau,
            quality_alpha=self.iou_aware.alpha, rank_weights_l1=first.rank_weights_l1,
        )
        terms, total = losses.terms, losses.total
        if extra_terms:  # mask head: the mask and dice rows
            extra = self.mask_loss.task_terms(group, logits.device) / normalizer  # (2, T)
            extra_weights = self._weights.get(streams, self.weights, logits.device, extra_terms)
            terms = torch.cat([terms, extra])
            total = total + (extra * extra_weights).sum()
        for term, values in zip(LOSS_TERMS + extra_terms, terms.unbind(0)):
            result.terms.add_block([term_name(task.name, term) for task in group], values)
        if any(flagged):
            names = [term_name(t.name, "class_error") if flag else None for t, flag in zip(group, flagged)]
            result.logs.add_block(names, losses.class_error)
        result.logs.add_block([term_name(task.name, "cardinality_error") for task in group],
                              losses.cardinality_error)
        return total
