"""The criterion's loss arithmetic: every supervision task, computed group by group.

Tasks whose predictions have the same shape and whose targets are the same list, and which share
the normalizer, the classification term, the pair weighting and the presence of masks (e.g. every
decoder layer of the one-to-one and one-to-many streams) form a **group**. A group's
predictions are stacked to (T, B, Q, C) logits and (T, B, Q, 4) boxes; when they are
consecutive layers of a stream of the `DetectorOutput` (what `layer_predictions` gives), the
stream tensor itself (or a slice of it) is used, so nothing is copied, and runs of several
streams are concatenated once. Then every term is computed once for the whole group:

* the matched pairs of all T * B (task, image) rows are concatenated with one `cat`; their
  row, task and target offsets come from the pair counts the host already knows (the
  assignment's per-image tensor lengths), built with numpy and moved in one transfer:
  no device-to-host synchronization;
* per pair the L1 distance, IoU and GIoU (`ops.boxes.aligned_box_iou_giou`); where the group
  needs them, the pair quality and prime-sample weights (`losses.iou_aware`);
* the classification term (`losses.classification`: focal, IoU-aware, ...) on the (T * B, Q, C)
  logits, summed per task;
* L1 and 1 - GIoU per pair (times the pair weights), summed per task with one `index_add_`;
* the weighted total as one (3, T) product with the per-task loss weights;
* the logs (class error, cardinality error) likewise, without gradient.

All of that is `dense_group_losses`, pure tensor code that `train.compile` compiles. Mask heads add
the `mask` and `dice` terms (random point sampling, eager: `MaskLoss.task_terms`) as two more rows.
Per-task terms are then views of the (3 or 5, T) result, named `<stream>.layer<i>.<term>`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from msdetr.config.supervision import LossWeights
from msdetr.losses.classification import ClassificationTerm, ClassTargets
from msdetr.losses.iou_aware import pair_quality, prime_sample_weights
from msdetr.modeling.outputs import DetectorOutput, StreamPredictions
from msdetr.ops.boxes import aligned_box_iou_giou
from msdetr.supervision.base import StreamLayer, SupervisionTask


@dataclass
class GroupLosses:
    """Losses of a group of T tasks.

    terms: (3, T) float32 unweighted cls / bbox / giou per task, with gradient (the criterion
        appends the (2, T) mask / dice rows of a mask group).
    total: scalar, the weighted sum over tasks and terms.
    class_error: (T,) no gradient; cardinality_error: (T,) no gradient.
    """

    terms: Tensor
    total: Tensor
    class_error: Tensor
    cardinality_error: Tensor


def _layout(predictions) -> tuple:
    """(logits shape, boxes shape, dtypes, device) of a task's predictions, without making views."""
    if isinstance(predictions, StreamLayer):
        logits, boxes = predictions.stream.logits, predictions.stream.boxes
        return (tuple(logits.shape[1:]), tuple(boxes.shape[1:]), logits.dtype, boxes.dtype, logits.device)
    logits, boxes = predictions.logits, predictions.boxes
    return (tuple(logits.shape), tuple(boxes.shape), logits.dtype, boxes.dtype, logits.device)


def group_tasks(tasks: list[SupervisionTask], extra_keys: list[tuple] | None = None) -> list[list[int]]:
    """Indices of `tasks` grouped by (targets list, prediction shapes, dtype, device, normalizer
    scale and clamp, pair weighting, and `extra_keys[i]`: the criterion's classification term and
    whether masks are supervised), first appearance order; within a group, task order is kept."""
    groups: dict[tuple, list[int]] = {}
    for index, task in enumerate(tasks):
        extra = () if extra_keys is None else extra_keys[index]
        key = (id(task.targets), *_layout(task.predictions), task.normalizer_scale, task.clamp_after_scale,
               task.rank_tau, task.rank_weights_l1, *extra)
        groups.setdefault(key, []).append(index)
    return list(groups.values())


def _is_layer(tensor: Tensor, stacked: Tensor, layer: int) -> bool:
    """Whether `tensor` is exactly `stacked[layer]` (same memory, shape, strides, autograd
    status), decided from metadata only: no tensor operation."""
    return (
        0 <= layer < stacked.shape[0]
        and tensor.shape == stacked.shape[1:]
        and tensor.stride() == stacked.stride()[1:]
        and tensor.dtype == stacked.dtype
        and tensor.device == stacked.device
        and tensor.requires_grad == stacked.requires_grad
        and tensor.data_ptr() == stacked.data_ptr() + layer * stacked.stride(0) * stacked.element_size()
    )


def _stream_of(task: SupervisionTask, output: DetectorOutput) -> StreamPredictions | None:
    """The output stream whose layer `task.layer` the task's predictions are, or None."""
    stream = output.streams.get(task.stream)
    if stream is None or task.layer is None:
        return None
    predictions = task.predictions
    if isinstance(predictions, StreamLayer) and predictions.stream is stream and predictions.layer == task.layer:
        return stream  # decided without making its views
    if _is_layer(task.predictions.logits, stream.logits, task.layer) and _is_layer(
        task.predictions.boxes, stream.boxes, task.layer
    ):
        return stream
    return None


def stack_predictions(tasks: list[SupervisionTask], output: DetectorOutput) -> tuple[Tensor, Tensor]:
    """(T, B, Q, C) logits and (T, B, Q, 4) boxes of `tasks` (same shapes), in task order.

    Runs of consecutive layers of one output stream become a slice of the stream tensor (the
    tensor itself when the run covers it); other tasks are stacked; runs are concatenated."""
    runs: list[tuple[StreamPredictions | None, int, int, SupervisionTask]] = []  # stream, first, end, task
    for task in tasks:
        stream = _stream_of(task, output)
        if stream is not None and runs and runs[-1][0] is stream and runs[-1][2] == task.layer:
            runs[-1] = (stream, runs[-1][1], task.layer + 1, runs[-1][3])
        elif stream is not None:
            runs.append((stream, task.layer, task.layer + 1, task))
        else:
            runs.append((None, 0, 1, task))
    logits, boxes = [], []
    for stream, first, end, task in runs:
        if stream is None:
            logits.append(task.predictions.logits[None])
            boxes.append(task.predictions.boxes[None])
        elif first == 0 and end == stream.num_layers:
            logits.append(stream.logits)
            boxes.append(stream.boxes)
        else:
            logits.append(stream.logits[first:end])
            boxes.append(stream.boxes[first:end])
    if len(runs) == 1:
        return logits[0], boxes[0]
    return torch.cat(logits), torch.cat(boxes)


class _WeightCache:
    """(len(terms), T) float32 loss weights of a group's streams, kept on the device between steps."""

    def __init__(self) -> None:
        self._cache: dict[tuple, Tensor] = {}

    def get(self, streams: tuple[str, ...], weights: Mapping[str, LossWeights], device: torch.device,
            terms: tuple[str, ...]) -> Tensor:
        key = (streams, device, terms,
               tuple((s, *(getattr(weights[s], term) for term in terms)) for s in set(streams)))
        cached = self._cache.get(key)
        if cached is None:
            if len(self._cache) > 32:
                self._cache.clear()
            table = [[float(getattr(weights[s], term)) for s in streams] for term in terms]
            cached = self._cache[key] = torch.tensor(table, dtype=torch.float32, device=device)
        return cached


@dataclass
class GroupPairs:
    """The matched pairs of a group's T tasks (B images each), flat, on the device.

    row: (P,) task * B + image; task: (P,) task index; query: (P,) query index;
    target: (P,) index into the concatenated targets of the batch;
    boxes: (n, 4) float32 and labels: (n,) int64, the concatenated targets;
    image_counts: (B,) float32 targets per image; pair_counts: (T,) float32 pairs per task.
    """

    row: Tensor
    task: Tensor
    query: Tensor
    target: Tensor
    boxes: Tensor
    labels: Tensor
    image_counts: Tensor
    pair_counts: Tensor


def group_pairs(tasks: list[SupervisionTask], batch: int, device: torch.device) -> GroupPairs:
    """Concatenates the tasks' assignments. Everything derived from the pair counts (which the
    host knows: the lengths of the per-image index tensors) is built with numpy and moved in one
    transfer; there is no device-to-host synchronization."""
    targets = tasks[0].targets
    counts = [int(t["labels"].shape[0]) for t in targets]
    sizes = np.array([len(pred_idx) for task in tasks for pred_idx, _ in task.assignment], dtype=np.int64)
    num_rows = len(tasks) * batch
    if sizes.shape[0] != num_rows:
        raise ValueError(
            f"supervision task assignments: expected {batch} (pred_idx, target_idx) pairs per task "
            f"(one per image), got {sizes.shape[0]} for {len(tasks)} tasks"
        )
    rows = np.arange(num_rows, dtype=np.int64)
    image_offsets = np.concatenate([[0], np.cumsum(counts[:-1], dtype=np.int64)]).astype(np.int64)
    num_pairs = int(sizes.sum())
    host = np.concatenate([
        np.repeat(rows, sizes),
        np.repeat(rows // batch, sizes),
        np.repeat(image_offsets[rows % batch], sizes),
    ])
    # counts as float32 (exact), the bits carried in the same int64 transfer as the indices
    host_counts = np.concatenate([np.asarray(counts), sizes.reshape(len(tasks), batch).sum(axis=1)])
    host_counts = host_counts.astype(np.float32)
    if host_counts.shape[0] % 2:
        host_counts = np.concatenate([host_counts, np.zeros(1, dtype=np.float32)])
    index = torch.from_numpy(np.concatenate([host, host_counts.view(np.int64)]))
    if index.device != device:
        index = index.to(device)
    row, task, offset, count_bits = index.split([num_pairs] * 3 + [host_counts.shape[0] // 2])
    image_counts, pair_counts = count_bits.view(torch.float32)[: batch + len(tasks)].split([batch, len(tasks)])
    empty = [torch.zeros(0, dtype=torch.int64, device=device)]
    query = torch.cat([_on(p, device, torch.int64) for task_ in tasks for p, _ in task_.assignment] or empty)
    target = torch.cat([_on(q, device, torch.int64) for task_ in tasks for _, q in task_.assignment] or empty)
    return GroupPairs(
        row=row,
        task=task,
        query=query,
        target=target + offset,
        boxes=torch.cat([_on(t["boxes"], device, torch.float32).reshape(-1, 4) for t in targets]),
        labels=torch.cat([_on(t["labels"], device, torch.int64).reshape(-1) for t in targets]),
        image_counts=image_counts,
        pair_counts=pair_counts,
    )


def _float(tensor: Tensor) -> Tensor:
    """`tensor.float()`, without the call for a float32 tensor."""
    return tensor if tensor.dtype == torch.float32 else tensor.float()


def _on(tensor: Tensor, device: torch.device, dtype: torch.dtype) -> Tensor:
    """`tensor.to(device, dtype)` without the call where it would change nothing (each call is an
    operator)."""
    return tensor if tensor.device == device and tensor.dtype == dtype else tensor.to(device, dtype)


def group_losses(
    logits: Tensor,
    boxes: Tensor,
    pairs: GroupPairs,
    num_targets: Tensor,
    weights: Tensor,
    classification: ClassificationTerm,
    log_class_error: bool,
    dense=None,
    iou_epsilon: float = 0.0,
    rank_tau: float | None = None,
    quality_alpha: float = 0.25,
    rank_weights_l1: bool = True,
) -> GroupLosses:
    """Losses of T tasks sharing their targets list.

    logits: (T, B, Q, C); boxes: (T, B, Q, 4) (see `stack_predictions`); pairs: see
    `group_pairs`; num_targets: scalar normalizer; weights: (3, T) loss weights.
    classification: the group's classification term (`losses.classification`).
    log_class_error: compute the class error (else it is NaN). dense: the tensor arithmetic,
    `dense_group_losses` by default (the criterion passes its compiled version, if any).
    iou_epsilon: added to the IoU's / GIoU's union and enclosing area (`supervision.iou_epsilon`).
    rank_tau: prime-sample weighting of the pairs (None: every pair weighs 1); quality_alpha:
    the exponent of the pair quality (`losses.iou_aware.pair_quality`); rank_weights_l1: the
    pair weights also scale the L1 term (else only GIoU and the class target).
    """
    dense = dense_group_losses if dense is None else dense
    return GroupLosses(*dense(
        logits, boxes, pairs.row, pairs.task, pairs.query, pairs.target, pairs.boxes, pairs.labels,
        pairs.image_counts, pairs.pair_counts, num_targets, weights, classification, log_class_error,
        iou_epsilon, rank_tau, quality_alpha, rank_weights_l1,
    ))


def dense_group_losses(
    logits: Tensor, boxes: Tensor, row: Tensor, task: Tensor, query: Tensor, target: Tensor, all_boxes: Tensor,
    all_labels: Tensor, image_counts: Tensor, pair_counts: Tensor, num_targets: Tensor, weights: Tensor,
    classification: ClassificationTerm, log_class_error: bool, iou_epsilon: float = 0.0,
    rank_tau: float | None = None, quality_alpha: float = 0.25, rank_weights_l1: bool = True,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The tensor arithmetic of `group_losses` (no host code: `torch.compile` can take it whole).

    logits (T, B, Q, C), boxes (T, B, Q, 4); row, task, query, target: (P,) int64 (see
    `GroupPairs`); all_boxes (n, 4), all_labels (n,): the batch's targets; image_counts (B,),
    pair_counts (T,) float32; num_targets: scalar; weights: (3, T).
    Returns the (3, T) terms, the total, the (T,) class error and the (T,) cardinality error.
    All arithmetic in float32."""
    num_tasks, batch, num_queries, num_classes = logits.shape
    num_rows = num_tasks * batch
    target_boxes = all_boxes[target]
    target_labels = all_labels[target]

    flat_logits = _float(logits).reshape(num_rows, num_queries, num_classes)
    matched = _float(boxes).reshape(num_rows, num_queries, 4)[row, query]  # (P, 4)
    iou, giou = aligned_box_iou_giou(matched, target_boxes, "cxcywh", iou_epsilon)  # (P,) each
    per_pair = torch.stack([(matched - target_boxes).abs().sum(dim=1), 1 - giou], dim=1)  # (P, 2): L1, 1 - GIoU
    quality = weight = None
    if classification.needs_quality or rank_tau is not None:
        quality = pair_quality(flat_logits[row, query, target_labels], iou, quality_alpha)
    if rank_tau is not None:  # pairs ranked within their (row, target)
        num_keys = num_rows * all_labels.shape[0]
        weight = prime_sample_weights(quality, row * all_labels.shape[0] + target, num_keys, rank_tau)
        pair_weight = weight[:, None] if rank_weights_l1 else torch.stack([torch.ones_like(weight), weight], 1)
        per_pair = per_pair * pair_weight  # (P, 2): L1 weighted or not, GIoU weighted
    class_targets = ClassTargets(row, query, target_labels, quality, weight)
    cls = classification(flat_logits, class_targets).view(num_tasks, -1).sum(dim=1)
    box_terms = per_pair.new_zeros(num_tasks, 2).index_add_(0, task, per_pair)
    terms = torch.cat([cls[None], box_terms.t()]) / num_targets  # (3, T)
    total = (terms * weights).sum()

    with torch.no_grad():
        top_class = flat_logits.detach().argmax(dim=-1)  # (T * B, Q)
        if log_class_error:
            correct = (top_class[row, query] == target_labels).float()
            hits = correct.new_zeros(num_tasks).index_add_(0, task, correct)
            class_error = torch.where(pair_counts > 0, 100.0 - 100.0 * hits / pair_counts.clamp(min=1), 100.0)
        else:
            class_error = torch.full((num_tasks,), float("nan"), device=logits.device)
        predicted = (top_class != num_classes - 1).sum(dim=1).view(num_tasks, batch)
        cardinality_error = (predicted.float() - image_counts).abs().mean(dim=1)
    return terms, total, class_error, cardinality_error
