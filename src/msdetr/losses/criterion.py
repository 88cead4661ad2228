"""The criterion: losses of the supervision tasks a strategy produces, weighted per stream.

For every task (stream, layer) with assignment pairs P and N = number of targets
in the batch (averaged over ranks, at least 1):

    cls  = sum over all queries and classes of the sigmoid focal loss / N
           (one-hot targets: a matched query is positive for its target's class;
           equal to the official `loss_ce`, the per-query mean times Q)
    bbox = sum over pairs of |box_pred - box_target|_1 / N
    giou = sum over pairs of (1 - GIoU) / N

total = sum over tasks and terms of weights[stream].<term> * term. Logged values
(class error on each stream's final layer, cardinality error) carry no gradient.
All math runs in float32, also under autocast. Term names: see `names`.

The tasks are computed in groups (`batched`): all tasks with the same targets and
prediction shapes (every decoder layer of both MS-DETR streams) share one focal / L1 /
GIoU computation over their concatenated pairs, with no device-to-host synchronization;
any strategy's tasks get this, nothing is asked of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from msdetr.config.supervision import LossWeights
from msdetr.errors import MsdetrError
from msdetr.losses.batched import _WeightCache, group_losses, group_tasks, stack_predictions
from msdetr.losses.names import LOSS_TERMS, term_name, to_official_name
from msdetr.losses.normalization import num_targets_across_ranks
from msdetr.modeling.outputs import DetectorOutput
from msdetr.supervision.base import SupervisionStrategy, Targets
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
    """

    def __init__(
        self,
        strategy: SupervisionStrategy,
        weights: Mapping[str, LossWeights],
        num_classes: int,
        focal_alpha: float = 0.25,
        focal_gamma: float = 2.0,
    ) -> None:
        super().__init__()
        self.strategy = strategy
        self.weights = dict(weights)
        self.num_classes = num_classes
        self.focal_alpha = focal_alpha
        self.focal_gamma = focal_gamma
        self._weights = _WeightCache()

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
            per_task: dict[int, tuple[list[Tensor], Tensor, Tensor]] = {}  # terms, class error, cardinality
            totals = []
            for indices in group_tasks(tasks):  # tasks sharing targets and shapes: one computation
                group = [tasks[i] for i in indices]
                logits, boxes = stack_predictions(group, output)
                weights = self._weights.get(tuple(task.stream for task in group), self.weights, logits.device)
                losses = group_losses(
                    group, logits, boxes, num_targets, weights, self.focal_alpha, self.focal_gamma,
                    log_class_error=any(task.log_class_error for task in group),
                )
                totals.append(losses.total)
                terms = [values.unbind(0) for values in losses.terms.unbind(0)]  # [term][task]
                logs = zip(losses.class_error.unbind(0), losses.cardinality_error.unbind(0))
                for j, (i, (class_err, card_err)) in enumerate(zip(indices, logs)):
                    per_task[i] = ([values[j] for values in terms], class_err, card_err)
            for i, task in enumerate(tasks):  # names in task order, as the per-task criterion gave them
                terms, class_err, card_err = per_task[i]
                for term, value in zip(LOSS_TERMS, terms):
                    result.terms[term_name(task.name, term)] = value
                if task.log_class_error:
                    result.logs[term_name(task.name, "class_error")] = class_err
                result.logs[term_name(task.name, "cardinality_error")] = card_err
            if totals:
                result.total = totals[0] if len(totals) == 1 else torch.stack(totals).sum()
        return result
