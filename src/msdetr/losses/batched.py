"""The criterion's loss arithmetic for many supervision tasks at once.

Tasks whose predictions have the same shape and whose targets are the same list (e.g. every
decoder layer of the one-to-one and one-to-many streams) form a **group**. A group's
predictions are stacked to (T, B, Q, C) logits and (T, B, Q, 4) boxes; when they are
consecutive layers of a stream of the `DetectorOutput` (what `layer_predictions` gives), the
stream tensor itself (or a slice of it) is used, so nothing is copied, and runs of several
streams are concatenated once. Then every term is computed once for the whole group:

* the matched pairs of all T * B (task, image) rows are concatenated with one `cat`; their
  row, task and target offsets come from the pair counts the host already knows (the
  assignment's per-image tensor lengths), built with numpy and moved in one transfer:
  no device-to-host synchronization;
* focal loss on the (T, B, Q, C) logits, summed per task;
* L1 and 1 - GIoU per pair, summed per task with one `index_add_`;
* the weighted total as one (3, T) product with the per-task loss weights;
* the logs (class error, cardinality error) likewise, without gradient.

Per-task terms are then views of the (3, T) result, named `<stream>.layer<i>.<term>`. The
values equal the per-task computation up to float32 summation order (a few ulp).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from msdetr.config.supervision import LossWeights
from msdetr.modeling.outputs import DetectorOutput, StreamPredictions
from msdetr.supervision.base import StreamLayer, SupervisionTask
from msdetr.supervision.pairs import last_occurrence

TERMS = ("cls", "bbox", "giou")


@dataclass
class GroupLosses:
    """Losses of a group of T tasks.

    terms: (3, T) float32 unweighted cls / bbox / giou per task, with gradient.
    total: scalar, the weighted sum over tasks and terms.
    class_error: (T,) no gradient; cardinality_error: (T,) no gradient.
    """

    terms: Tensor
    total: Tensor
    class_error: Tensor
    cardinality_error: Tensor


def onehot_focal_loss(logits: Tensor, onehot: Tensor, alpha: float, gamma: float) -> Tensor:
    """Elementwise sigmoid focal loss for 0/1 targets (any shape): torchvision's
    `sigmoid_focal_loss(reduction="none")` value for value (with a 0/1 target its
    `p * t + (1 - p) * (1 - t)` is exactly p or 1 - p, and its alpha_t exactly alpha or
    1 - alpha), in fewer operations."""
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, onehot, reduction="none")
    positive = onehot > 0
    p_t = torch.where(positive, p, 1 - p)
    loss = ce * ((1 - p_t) ** gamma)
    if alpha >= 0:
        loss = torch.where(positive, alpha, 1 - alpha) * loss
    return loss


def pair_box_losses(pred: Tensor, target: Tensor, eps: float = 0.0) -> Tensor:
    """(P, 2): per matched pair the L1 distance and 1 - GIoU of (P, 4) cxcywh boxes (`eps` added
    to the union and the enclosing area where they divide, see `ops.boxes`).

    The same arithmetic as `aligned_generalized_box_iou` on `box_cxcywh_to_xyxy` boxes (DETR's
    formulas), on both box sets stacked: corners x0 = cx - 0.5 w, ..., areas as products of the
    side lengths, intersection and enclosing box from the max / min of the corners."""
    both = torch.stack([pred, target])  # (2, P, 4)
    l1 = (pred - target).abs().sum(dim=1)
    center, half = both[..., :2], 0.5 * both[..., 2:]
    low, high = center - half, center + half  # (2, P, 2) each
    area = (high - low).prod(dim=-1)  # (2, P)
    inner = (high.amin(dim=0) - low.amax(dim=0)).clamp(min=0)  # (P, 2)
    outer = (high.amax(dim=0) - low.amin(dim=0)).clamp(min=0)
    inter, enclosing = inner.prod(dim=-1), outer.prod(dim=-1)
    union = area[0] + area[1] - inter
    if eps:
        giou = inter / (union + eps) - (enclosing - union) / (enclosing + eps)
    else:
        giou = inter / union - (enclosing - union) / enclosing
    return torch.stack([l1, 1 - giou], dim=1)


def _layout(predictions) -> tuple:
    """(logits shape, boxes shape, dtypes, device) of a task's predictions, without making views."""
    if isinstance(predictions, StreamLayer) and predictions._views is None:
        logits, boxes = predictions.stream.logits, predictions.stream.boxes
        return (tuple(logits.shape[1:]), tuple(boxes.shape[1:]), logits.dtype, boxes.dtype, logits.device)
    logits, boxes = predictions.logits, predictions.boxes
    return (tuple(logits.shape), tuple(boxes.shape), logits.dtype, boxes.dtype, logits.device)


def group_tasks(tasks: list[SupervisionTask]) -> list[list[int]]:
    """Indices of `tasks` grouped by (targets list, prediction shapes, dtype, device, normalizer
    scale and clamp), first appearance order; within a group, task order is kept."""
    groups: dict[tuple, list[int]] = {}
    for index, task in enumerate(tasks):
        key = (id(task.targets), *_layout(task.predictions), task.normalizer_scale, task.clamp_after_scale)
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
    if isinstance(predictions, StreamLayer) and predictions._views is None:  # not even made yet
        return stream if predictions.stream is stream and predictions.layer == task.layer else None
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
    """(3, T) float32 loss weights of a group's streams, kept on the device between steps."""

    def __init__(self) -> None:
        self._cache: dict[tuple, Tensor] = {}

    def get(self, streams: tuple[str, ...], weights: Mapping[str, LossWeights], device: torch.device) -> Tensor:
        key = (streams, device, tuple((s, weights[s].cls, weights[s].bbox, weights[s].giou) for s in set(streams)))
        cached = self._cache.get(key)
        if cached is None:
            if len(self._cache) > 32:
                self._cache.clear()
            table = [[float(getattr(weights[s], term)) for s in streams] for term in TERMS]
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
    focal_alpha: float,
    focal_gamma: float,
    log_class_error: bool,
    dense=None,
    iou_epsilon: float = 0.0,
) -> GroupLosses:
    """Losses of T tasks sharing their targets list.

    logits: (T, B, Q, C); boxes: (T, B, Q, 4) (see `stack_predictions`); pairs: see
    `group_pairs`; num_targets: scalar normalizer; weights: (3, T) loss weights.
    log_class_error: compute the class error (else it is NaN). dense: the tensor arithmetic,
    `dense_group_losses` by default (the criterion passes its compiled version, if any).
    iou_epsilon: added to the GIoU's union and enclosing area (`supervision.iou_epsilon`).
    """
    dense = dense_group_losses if dense is None else dense
    return GroupLosses(*dense(
        logits, boxes, pairs.row, pairs.task, pairs.query, pairs.target, pairs.boxes, pairs.labels,
        pairs.image_counts, pairs.pair_counts, num_targets, weights, focal_alpha, focal_gamma, log_class_error,
        iou_epsilon,
    ))


def dense_group_losses(
    logits: Tensor, boxes: Tensor, row: Tensor, task: Tensor, query: Tensor, target: Tensor, all_boxes: Tensor,
    all_labels: Tensor, image_counts: Tensor, pair_counts: Tensor, num_targets: Tensor, weights: Tensor,
    focal_alpha: float, focal_gamma: float, log_class_error: bool, iou_epsilon: float = 0.0,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The tensor arithmetic of `group_losses` (no host code: `torch.compile` can take it whole).
    Returns the (3, T) terms, the total, the (T,) class error and the (T,) cardinality error.
    All arithmetic in float32."""
    num_tasks, batch, num_queries, num_classes = logits.shape
    target_boxes = all_boxes[target]
    target_labels = all_labels[target]

    flat_logits = _float(logits).reshape(num_tasks * batch, num_queries, num_classes)
    # A query given to several targets takes the class of its last pair.
    winner = last_occurrence(row, query, num_tasks * batch, num_queries)
    onehot = torch.zeros(flat_logits.shape, dtype=torch.float32, device=logits.device)
    onehot[row[winner], query[winner], target_labels[winner]] = 1.0
    cls = onehot_focal_loss(flat_logits, onehot, focal_alpha, focal_gamma).view(num_tasks, -1).sum(dim=1)

    matched = _float(boxes).reshape(num_tasks * batch, num_queries, 4)[row, query]  # (P, 4)
    per_pair = pair_box_losses(matched, target_boxes, iou_epsilon)  # (P, 2): L1, 1 - GIoU
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
