"""One-to-many top-K assignment of MS-DETR, vectorized over the batch, targets and queries.

The matching score of query q and target t is

    s(q, t) = class_weight * sigmoid(logit_q[label_t]) + iou_weight * IoU(box_q, box_t)

(0.3 / 0.7 in the released code). Two modes:

``official`` (default, what the published models were trained with):
  1. every query goes to the target where its score is highest, and is positive
     if that score >= threshold (0.4); each target's single best query is made
     positive as well (it still counts for *its own* best target);
  2. positives are subsampled at random to at most int(positive_fraction * Q)
     (25%), drawing from the random source exactly as the official sampler does
     (one `randperm` over the positives and one over the negatives per image);
  3. a target with c remaining positives gets its top-min(c, K) queries by score
     over *all* queries (K = 6). A query may so land on several targets, and a
     target whose best query was claimed by another target may get none.

``paper`` (the paper's text): each target takes its top-K queries by score, and
pairs scoring below the threshold are dropped. No subsampling, no randomness.

Pairs are returned ordered by increasing score within each image, so that a query
given to several targets takes the class of the best-scoring one (see `base`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from msdetr.errors import MsdetrError
from msdetr.ops.boxes import pairwise_box_iou
from msdetr.supervision.base import Assignment, LayerPredictions, Targets
from msdetr.supervision.precision import autocast_disabled
from msdetr.supervision.targets import PaddedTargets, layers_per_chunk, pad_targets

TopKMode = Literal["official", "paper"]


class TopKAssigner:
    """MS-DETR one-to-many assigner; see the module docstring for the two modes.

    k: most queries per target. threshold: score threshold.
    class_weight, iou_weight: weights of the class probability and the IoU in the score.
    positive_fraction: (official mode) cap on positives, as a fraction of the queries.
    generator: random source of the official subsampling, on the predictions'
        device; None uses torch's global generator (as the official code does).
    """

    def __init__(
        self,
        k: int = 6,
        threshold: float = 0.4,
        class_weight: float = 0.3,
        iou_weight: float = 0.7,
        positive_fraction: float = 0.25,
        mode: TopKMode = "official",
        generator: torch.Generator | None = None,
    ) -> None:
        if mode not in ("official", "paper"):
            raise ValueError(f"mode must be 'official' or 'paper', got {mode!r}")
        self.k = k
        self.threshold = threshold
        self.class_weight = class_weight
        self.iou_weight = iou_weight
        self.positive_fraction = positive_fraction
        self.mode = mode
        self.generator = generator

    @torch.no_grad()
    def scores(self, predictions: LayerPredictions, padded: PaddedTargets) -> Tensor:
        """(B, T, Q) float32 matching scores; -inf on padded target slots."""
        with autocast_disabled(predictions.logits.device):
            iou = pairwise_box_iou(padded.boxes, predictions.boxes.float(), in_fmt="cxcywh")
            logits = predictions.logits.float().transpose(1, 2)  # (B, C, Q)
            image = torch.arange(logits.shape[0], device=logits.device)[:, None]
            class_score = logits[image, padded.labels].sigmoid_()  # (B, T, Q)
            score = iou.mul_(self.iou_weight).add_(class_score.mul_(self.class_weight))
        if padded.has_padding:
            score.masked_fill_(~padded.valid[..., None], float("-inf"))
        return score

    def __call__(self, predictions: LayerPredictions, targets: Targets) -> Assignment:
        """One layer: logits (B, Q, C), boxes (B, Q, 4) -> per image (pred_idx, target_idx)."""
        return self.assign_layers(predictions.logits[None], predictions.boxes[None], targets)[0]

    @torch.no_grad()
    def assign_layers(
        self, logits: Tensor, boxes: Tensor, targets: Targets, order: list[int] | None = None
    ) -> list[Assignment]:
        """All decoder layers of a stream at once (one pass over the batch for every layer).

        logits: (L, B, Q, C); boxes: (L, B, Q, 4). Returns one assignment per layer.
        order: the layer order of the official mode's random draws; by default the final
        layer first, then 0, 1, ... (the official criterion's order).
        """
        num_layers, batch, num_queries = logits.shape[:3]
        order = [num_layers - 1, *range(num_layers - 1)] if order is None else order
        padded = pad_targets(targets, logits.device)
        # Layers in chunks (following `order`) so that a (layers * B, T, Q) score tensor stays bounded.
        chunk = layers_per_chunk(num_layers, batch * padded.max_count * num_queries, logits.device)
        result: dict[int, Assignment] = {}
        for start in range(0, num_layers, chunk):
            draw_layers = order[start : start + chunk]
            layers = sorted(draw_layers)  # rows of the flattened batch: layers[i], image b at i * B + b
            if layers == list(range(layers[0], layers[-1] + 1)):  # consecutive layers: a view
                chunk_logits, chunk_boxes = (
                    logits[layers[0] : layers[-1] + 1],
                    boxes[layers[0] : layers[-1] + 1],
                )
            else:
                index = torch.tensor(layers, device=logits.device)
                chunk_logits, chunk_boxes = logits.index_select(0, index), boxes.index_select(0, index)
            flat = LayerPredictions(chunk_logits.flatten(0, 1), chunk_boxes.flatten(0, 1))
            rows = _Rows(layers, batch, draw_order=[layers.index(layer) for layer in draw_layers])
            pairs = self._assign(flat, padded.repeat(len(layers)), rows)
            for i, layer in enumerate(layers):
                result[layer] = pairs[i * batch : (i + 1) * batch]
        return [result[layer] for layer in range(num_layers)]

    def _assign(self, predictions: LayerPredictions, padded: PaddedTargets, rows: _Rows) -> Assignment:
        """Assignment of every row of the flattened (layer, image) batch, see `_Rows`.

        On the CPU a large part of the time goes to the fixed cost of each tensor operation
        (see docs/benchmarks.md), so the steps below use few operations, and no slow
        index-returning reduction but `topk` (outside a rare exact fallback for ties).
        """
        device = predictions.logits.device
        batch, num_queries = predictions.logits.shape[:2]
        if padded.max_count == 0 or num_queries == 0:
            if self.mode == "official":
                self._subsample(torch.zeros(batch, num_queries, dtype=torch.bool, device=device), rows)
            empty = torch.zeros(0, dtype=torch.int64, device=device)
            return [(empty, empty) for _ in range(batch)]

        scores = self.scores(predictions, padded)
        k = min(self.k, num_queries)
        top_scores, top_queries = scores.topk(k, dim=2)  # (B, T, k), best first
        if self.mode == "official":
            per_target = self._official_positive_counts(scores, top_queries[..., 0], padded, rows)
            take = torch.arange(k, device=device) < per_target[..., None]  # (B, T, k)
        else:
            # topk ranks NaN first, so a NaN anywhere in a target's scores shows in its best score
            # (padded target rows hold -inf, never NaN).
            rows.raise_on_nan(torch.isnan(top_scores[..., 0]).sum(dim=1).tolist())
            take = top_scores >= self.threshold  # padded rows: -inf
        return _taken_pairs(top_scores, top_queries, take)

    def _official_positive_counts(
        self, scores: Tensor, best_query: Tensor, padded: PaddedTargets, rows: _Rows
    ) -> Tensor:
        """(B, T) number of subsampled positive queries whose best target is each target.

        scores: (B, T, Q); best_query: (B, T) each target's best query.
        """
        best_score = scores.amax(dim=1)  # (B, Q) each query's best score; NaN if any of its scores is
        positive = best_score >= self.threshold  # (B, Q): the query's best score passes
        # Each target's best query is positive whatever its score; it counts for its own best target.
        if padded.has_padding:
            forced = torch.zeros(positive.shape, dtype=torch.int64, device=positive.device)
            positive |= forced.scatter_add_(1, best_query, padded.valid.long()) > 0
        else:
            positive.scatter_(1, best_query, True)
        # 1.0 where a target reaches its query's best score (padded rows: -inf, only where the
        # image has no target at all, and then no query is positive).
        at_best = torch.eq(scores, best_score[:, None, :], out=torch.empty_like(scores))
        # The sum over the queries is NaN exactly where a score is NaN (there are no +inf scores).
        kept, num_kept = self._subsample(positive, rows, best_score.sum(dim=1))
        return _best_target_counts(scores, at_best, kept, num_kept)

    def _subsample(self, positive: Tensor, rows: _Rows, nan_check: Tensor | None = None) -> tuple[Tensor, int]:
        """Keep at most int(positive_fraction * Q) positives per image, at random.

        positive: (rows, Q) bool, drawn in `rows.draw_order`. nan_check: (rows,) float,
        NaN where the row's matching scores hold NaN (an error, raised here with the one
        device-to-host transfer). Consumes the random source like the official sampler: per
        row, a permutation of the positives (the first `cap` are kept) and one of the
        negatives (unused, drawn for the same random stream).
        Returns the (rows, Q) bool kept positives and their total number.
        """
        batch, num_queries = positive.shape
        device = positive.device
        cap = int(num_queries * self.positive_fraction)
        if nan_check is None:
            num_positive = positive.sum(dim=1).tolist()
        else:
            num_positive, nan_check = torch.stack([positive.sum(dim=1), nan_check]).tolist()  # float
            rows.raise_on_nan([value != value for value in nan_check])
            num_positive = [int(count) for count in num_positive]
        over_cap: list[int] = []  # rows with more positives than the cap
        kept_ranks: list[Tensor] = []  # their kept positives, as ranks among the row's positives
        for row in rows.draw_sequence():
            count = num_positive[row]
            order = torch.randperm(count, device=device, generator=self.generator)
            torch.randperm(num_queries - count, device=device, generator=self.generator)
            if count > cap:
                over_cap.append(row)
                kept_ranks.append(order[:cap])
        num_kept = sum(min(count, cap) for count in num_positive)
        if not over_cap:
            return positive, num_kept
        # keep_rank[row, r]: whether the row's positive of rank r (in query order) is kept.
        keep_rank = torch.ones_like(positive)
        over_rows = torch.tensor(over_cap, device=device)[:, None]
        keep_rank[over_rows] = False
        keep_rank[over_rows, torch.stack(kept_ranks)] = True
        rank = positive.cumsum(dim=1).sub_(1).clamp_(min=0)  # rank of each positive among its row's positives
        return keep_rank.gather(1, rank).logical_and_(positive), num_kept


def _best_target_counts(scores: Tensor, at_best: Tensor, kept: Tensor, num_kept: int) -> Tensor:
    """(B, T) number of kept queries whose best target (the first one on ties, as the official
    `max` over targets) is each target, as exact integers in `scores`' dtype.

    scores: (B, T, Q); at_best: (B, T, Q) 1.0 where a target reaches its query's best score,
    else 0.0 (overwritten); kept: (B, Q) bool, with `num_kept` True entries in all.
    Index-returning reductions are slow on the CPU, so this counts the (target, kept query)
    pairs at the query's best score, and falls back to the official `max` only if a kept query
    reaches it at several targets (then the counts add up to more than `num_kept`).
    """
    counts = at_best.mul_(kept[:, None, :]).sum(dim=2)  # (B, T)
    if counts.sum().item() == num_kept:
        return counts
    image, query = kept.nonzero(as_tuple=True)
    best_target = scores.transpose(1, 2)[image, query].max(dim=1).indices
    counts = torch.zeros_like(counts)
    return counts.index_put_((image, best_target), torch.ones_like(best_target, dtype=counts.dtype), accumulate=True)


@dataclass
class _Rows:
    """Rows of a flattened (layer, image) batch: row i * batch_size + b is image b of decoder
    layer layers[i]; draw_order lists the layer positions i in the order of the random draws."""

    layers: list[int]
    batch_size: int
    draw_order: list[int]

    def draw_sequence(self) -> list[int]:
        """Row indices in the order of the official random draws (layer by layer, image by image)."""
        return [i * self.batch_size + b for i in self.draw_order for b in range(self.batch_size)]

    def raise_on_nan(self, has_nan: list) -> None:
        """has_nan: per row, whether (or for how many targets) its matching scores hold NaN."""
        for row, flag in enumerate(has_nan):
            if flag:
                layer = (
                    f" (decoder layer {self.layers[row // self.batch_size]})" if len(self.layers) > 1 else ""
                )
                raise MsdetrError(
                    f"one-to-many assignment: image {row % self.batch_size} of the batch{layer}: the "
                    "matching score has NaN values; check that image's target boxes, and lower the "
                    "learning rate if the model's predictions diverged"
                )


def _taken_pairs(top_scores: Tensor, top_queries: Tensor, take: Tensor) -> Assignment:
    """Per image, the taken entries of the (B, T, k) top-k tables as (pred_idx, target_idx),
    by increasing score (a stable sort: equal scores keep the target order)."""
    k = take.shape[2]
    masked = torch.where(take, top_scores, float("inf")).flatten(1)  # (B, T * k)
    order = masked.sort(dim=1, stable=True).indices
    queries = top_queries.flatten(1).gather(1, order)
    targets = order.div_(k, rounding_mode="floor")
    counts = take.flatten(1).sum(dim=1).tolist()
    return [(q[:n], t[:n]) for q, t, n in zip(queries.unbind(), targets.unbind(), counts)]
