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

import itertools
from dataclasses import dataclass

import torch
from torch import Tensor

from msdetr.config.supervision import TopKMode
from msdetr.ops.boxes import pairwise_box_iou
from msdetr.supervision.base import Assignment, LayerPredictions, Targets
from msdetr.supervision.precision import autocast_disabled
from msdetr.supervision.targets import (
    PaddedTargets,
    cached_arange,
    diverged_matching_error,
    layers_per_chunk,
    pad_targets,
)

# On the CPU, the top-K assigner gains from assigning two layers together at 900 queries x 50
# targets (fewer fixed operation costs), where the Hungarian assigner does not (docs/benchmarks.md).
TOPK_PAIRWISE_ELEMENTS_CPU = 2**18


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
        return self._scores(predictions, padded)[0]

    def _scores(self, predictions: LayerPredictions, padded: PaddedTargets) -> tuple[Tensor, Tensor]:
        """The (B, T, Q) scores and a spare (B, T, Q) float32 buffer of the same layout (the class
        scores' memory, free once they are added: reusing it keeps the working set in cache)."""
        logits, boxes = predictions.logits, predictions.boxes
        with autocast_disabled(logits.device):
            # (`.float()` only where needed: each tensor operation has a fixed cost on the CPU.)
            logits = (logits if logits.dtype == torch.float32 else logits.float()).transpose(1, 2)
            boxes = boxes if boxes.dtype == torch.float32 else boxes.float()
            class_score = logits[padded.image_index(), padded.labels]  # (B, T, Q)
            class_score.sigmoid_().mul_(self.class_weight)
            iou = pairwise_box_iou(padded.boxes, boxes, in_fmt="cxcywh")
            score = iou.mul_(self.iou_weight).add_(class_score)
        if padded.has_padding:
            score.masked_fill_(~padded.valid[..., None], float("-inf"))
        return score, class_score

    @torch.no_grad()
    def __call__(self, predictions: LayerPredictions, targets: Targets) -> Assignment:
        """One layer: logits (B, Q, C), boxes (B, Q, 4) -> per image (pred_idx, target_idx)."""
        padded = pad_targets(targets, predictions.logits.device)
        return self._assign(predictions, padded, _Rows([0], len(targets), draw_order=[0]))

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
        chunk = layers_per_chunk(
            num_layers, batch * padded.max_count * num_queries, logits.device, cpu_limit=TOPK_PAIRWISE_ELEMENTS_CPU
        )
        result: dict[int, Assignment] = {}
        for draw_layers in _chunks(order, chunk):
            layers = sorted(draw_layers)  # rows of the flattened batch: layers[i], image b at i * B + b
            if layers == list(range(layers[0], layers[-1] + 1)):  # consecutive layers: a view
                chunk_logits, chunk_boxes = logits[layers[0] : layers[-1] + 1], boxes[layers[0] : layers[-1] + 1]
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
        (see docs/benchmarks.md), so the steps below use few operations, two host syncs (the
        random draws need the positive counts; the result is split per image), and no slow
        index-returning reduction but `topk` (outside a rare exact fallback for ties).
        """
        device = predictions.logits.device
        batch, num_queries = predictions.logits.shape[:2]
        if padded.max_count == 0 or num_queries == 0:
            if self.mode == "official":
                self._subsample(torch.zeros(batch, num_queries, dtype=torch.bool, device=device), rows)
            empty = torch.zeros(0, dtype=torch.int64, device=device)
            return [(empty, empty) for _ in range(batch)]

        scores, spare = self._scores(predictions, padded)
        k = min(self.k, num_queries)
        top_scores, top_queries = scores.topk(k, dim=2)  # (B, T, k), best first
        if self.mode == "paper":
            # topk ranks NaN first, so a NaN anywhere in a target's scores shows in its best score
            # (padded target rows hold -inf, never NaN).
            rows.raise_on_nan(torch.isnan(top_scores[..., 0]).sum(dim=1).tolist())
            return _taken_pairs(top_scores, top_queries, top_scores >= self.threshold)[0]
        best_score = scores.amax(dim=1)  # (B, Q) each query's best score
        positive = self._positive(best_score, top_queries[..., 0], padded)
        # A target's best score is NaN exactly where its scores hold NaN (topk ranks NaN first;
        # padded rows are -inf, and there are no +inf scores), so this sum is NaN exactly then.
        kept, num_kept = self._subsample(positive, rows, top_scores[..., 0].sum(dim=1))
        # (B, T, 1) kept queries whose best score is reached at each target: the per-target count
        # of the official code, unless a kept query reaches its best score at two targets (then
        # the counts add up to more than num_kept; checked below). Exact integers in float32.
        kept_best = torch.where(kept, best_score, float("nan"))  # NaN never compares equal
        counts = torch.eq(scores, kept_best[:, None, :], out=spare).sum(dim=2, keepdim=True)
        pairs, total = _taken_pairs(top_scores, top_queries, _first(k, counts), counts)
        if total == num_kept:
            return pairs
        counts = _first_best_target_counts(scores, kept)  # ties: the official `max` over targets
        return _taken_pairs(top_scores, top_queries, _first(k, counts))[0]

    def _positive(self, best_score: Tensor, best_query: Tensor, padded: PaddedTargets) -> Tensor:
        """(R, Q) bool: queries whose best score passes the threshold, and each target's best
        query whatever its score (it still counts for its own best target).
        best_score: (R, Q); best_query: (R, T) each target's best query."""
        positive = best_score >= self.threshold
        if padded.has_padding:
            forced = torch.zeros(positive.shape, dtype=torch.int64, device=positive.device)
            return positive.logical_or_(forced.scatter_add_(1, best_query, padded.valid.long()) > 0)
        return positive.scatter_(1, best_query, True)

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
        kept_ranks: list[Tensor | None] = [None] * batch  # per row, the ranks of its kept positives
        for row in rows.draw_sequence():
            count = num_positive[row]
            order = torch.randperm(count, device=device, generator=self.generator)
            torch.randperm(num_queries - count, device=device, generator=self.generator)
            kept_ranks[row] = order[:cap] if count > cap else order
        num_kept = sum(min(count, cap) for count in num_positive)
        if num_kept == sum(num_positive):
            return positive, num_kept
        # The positives of all rows as flat indices, row after row in query order: a row's
        # positive of rank r is entry r after the row's offset.
        flat_positive = positive.view(-1).nonzero().squeeze(1)
        offsets = itertools.accumulate(num_positive[:-1], initial=0)
        kept_ranks = torch.cat([ranks.add_(offset) if offset else ranks for ranks, offset in zip(kept_ranks, offsets)])
        kept = torch.zeros(batch * num_queries, dtype=torch.bool, device=device)
        return kept.index_fill_(0, flat_positive[kept_ranks], True).view(batch, num_queries), num_kept


def _first(k: int, counts: Tensor) -> Tensor:
    """(B, T, k) bool: the first min(count, k) entries of each target's top-k table, from
    (B, T, 1) float counts."""
    return cached_arange(k, counts.device, counts.dtype) < counts


def _chunks(order: list[int], size: int) -> list[list[int]]:
    """`order` cut into pieces of at most `size` layers, each (once sorted) a run of consecutive
    layers where possible, so that its predictions are a view rather than a copy: the default
    order [L-1, 0, 1, ...] becomes [L-1], [0, 1, ...], ... unless all layers fit in one piece."""
    if size >= len(order):
        return [list(order)]
    pieces: list[list[int]] = []
    for layer in order:
        piece = pieces[-1] if pieces else None
        if piece and len(piece) < size and (layer == min(piece) - 1 or layer == max(piece) + 1):
            piece.append(layer)
        else:
            pieces.append([layer])
    return pieces


def _first_best_target_counts(scores: Tensor, kept: Tensor) -> Tensor:
    """(B, T, 1) number of kept queries whose best target is each target, ties going to the
    first target as in the official `max` over targets. scores: (B, T, Q); kept: (B, Q) bool."""
    image, query = kept.nonzero(as_tuple=True)
    best_target = scores.transpose(1, 2)[image, query].max(dim=1).indices
    counts = torch.zeros(scores.shape[:2], dtype=scores.dtype, device=scores.device)
    ones = torch.ones_like(best_target, dtype=counts.dtype)
    return counts.index_put_((image, best_target), ones, accumulate=True)[..., None]


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
                layer = self.layers[row // self.batch_size] if len(self.layers) > 1 else None
                raise diverged_matching_error("one-to-many", row % self.batch_size, layer,
                                              "matching score has NaN values")


def _taken_pairs(
    top_scores: Tensor, top_queries: Tensor, take: Tensor, counts: Tensor | None = None
) -> tuple[Assignment, float | None]:
    """Per image, the taken entries of the (B, T, k) top-k tables as (pred_idx, target_idx),
    by increasing score (a stable sort: equal scores keep the target order).

    counts: optional (B, T, 1) float tensor whose total comes back with the same host sync
    (None without it).
    """
    k = take.shape[2]
    masked = torch.where(take, top_scores, float("inf")).flatten(1)  # (B, T * k)
    order = masked.sort(dim=1, stable=True).indices
    queries = top_queries.flatten(1).gather(1, order)
    targets = order.div_(k, rounding_mode="floor")
    taken = take.sum(dim=(1, 2), dtype=top_scores.dtype)  # exact: at most T * k
    if counts is None:
        taken, total = taken.tolist(), None
    else:
        taken, totals = torch.stack([taken, counts.sum(dim=(1, 2))]).tolist()
        total = sum(totals)
    return [(queries[i, : int(n)], targets[i, : int(n)]) for i, n in enumerate(taken)], total
