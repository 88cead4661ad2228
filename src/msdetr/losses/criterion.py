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

from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from msdetr.config.supervision import LossWeights
from msdetr.errors import MsdetrError
from msdetr.losses.batched import _WeightCache, group_losses, group_pairs, group_tasks, stack_predictions
from msdetr.losses.names import LOG_TERMS, LOSS_TERMS, term_name, to_official_name
from msdetr.losses.normalization import num_targets_across_ranks
from msdetr.losses.term_table import TermTable, host_values
from msdetr.modeling.outputs import DetectorOutput
from msdetr.supervision.base import SupervisionStrategy, Targets
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
        # the tensor arithmetic of a group's losses; `compile_criterion` replaces it by its compiled form
        self.dense_losses = None

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
            result = LossResult(
                total=torch.zeros((), device=device), terms=TermTable(), logs=TermTable(), num_targets=num_targets
            )
            result.terms.reserve([term_name(task.name, term) for task in tasks for term in LOSS_TERMS])
            result.logs.reserve([
                term_name(task.name, log) for task in tasks for log in LOG_TERMS
                if log != "class_error" or task.log_class_error
            ])
            totals = []
            for indices in group_tasks(tasks):  # tasks sharing targets and shapes: one computation
                group = [tasks[i] for i in indices]
                logits, boxes = stack_predictions(group, output)
                weights = self._weights.get(tuple(task.stream for task in group), self.weights, logits.device)
                flagged = [task.log_class_error for task in group]
                pairs = group_pairs(group, logits.shape[1], logits.device)
                scale = group[0].normalizer_scale  # one value per group (see `group_tasks`)
                normalizer = num_targets if scale == 1.0 else num_targets * scale
                losses = group_losses(
                    logits, boxes, pairs, normalizer, weights, self.focal_alpha, self.focal_gamma, any(flagged),
                    dense=self.dense_losses,
                )
                totals.append(losses.total)
                for term, values in zip(LOSS_TERMS, losses.terms.unbind(0)):
                    result.terms.add_block([term_name(task.name, term) for task in group], values)
                if any(flagged):
                    names = [term_name(t.name, "class_error") if flag else None for t, flag in zip(group, flagged)]
                    result.logs.add_block(names, losses.class_error)
                names = [term_name(task.name, "cardinality_error") for task in group]
                result.logs.add_block(names, losses.cardinality_error)
            if totals:
                result.total = totals[0] if len(totals) == 1 else torch.stack(totals).sum()
        return result
