"""Batched views of per-image targets, so assigners work on the whole batch at once."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn.utils.rnn import pad_sequence

from msdetr.errors import MsdetrError
from msdetr.supervision.base import Targets

# Largest (layers * B, Q, T) pairwise tensor an assigner builds at once when it assigns
# several decoder layers together: on an accelerator, bounded by memory (float32: 256 MiB);
# on the CPU, batching stops paying off once tensors leave the caches (measured, see
# docs/benchmarks.md), so larger layers are assigned one at a time.
MAX_PAIRWISE_ELEMENTS = 2**26
MAX_PAIRWISE_ELEMENTS_CPU = 2**17


def layers_per_chunk(
    num_layers: int, elements_per_layer: int, device: torch.device, cpu_limit: int | None = None
) -> int:
    """How many decoder layers to assign together (at least 1); cpu_limit replaces
    MAX_PAIRWISE_ELEMENTS_CPU (an assigner whose best chunk size differs, measured)."""
    if device.type == "cpu":
        limit = MAX_PAIRWISE_ELEMENTS_CPU if cpu_limit is None else cpu_limit
    else:
        limit = MAX_PAIRWISE_ELEMENTS
    return max(1, min(num_layers, limit // max(1, elements_per_layer)))


def diverged_matching_error(assignment: str, image: int, layer: int | None, what: str) -> MsdetrError:
    """The one error of every assigner whose matching cost / score is not finite.

    assignment: "one-to-one", "many-to-one", ...; image: index in the batch; layer: decoder layer
    (None: do not name it); what: e.g. "matching cost has NaN or inf values"."""
    where = "" if layer is None else f" (decoder layer {layer})"
    return MsdetrError(
        f"{assignment} assignment: image {image} of the batch{where}: the {what}; check that image's "
        "target boxes, and lower the learning rate if the model's predictions diverged"
    )


# A valid box for padded target slots: keeps IoU/GIoU finite, never selected.
_PAD_BOX = (0.5, 0.5, 1.0, 1.0)


@dataclass
class PaddedTargets:
    """Targets of a batch padded to the largest count T.

    boxes:  (B, T, 4) float32 cxcywh; padded slots hold a dummy valid box.
    labels: (B, T) int64; padded slots hold 0.
    valid:  (B, T) bool, False on padding.
    counts: per image number of targets (host ints).
    """

    boxes: Tensor
    labels: Tensor
    valid: Tensor
    counts: list[int]

    @property
    def max_count(self) -> int:
        return self.boxes.shape[1]

    @property
    def has_padding(self) -> bool:
        return any(count != self.max_count for count in self.counts)

    def image_index(self) -> Tensor:
        """(B, 1) int64 image indices, for advanced indexing of (B, ...) tensors."""
        return cached_arange(self.labels.shape[0], self.labels.device)[:, None]

    def repeat(self, times: int) -> PaddedTargets:
        """The batch repeated `times` times along dim 0 (one copy per decoder layer); itself for 1."""
        if times == 1:
            return self
        return PaddedTargets(
            boxes=self.boxes.repeat(times, 1, 1),
            labels=self.labels.repeat(times, 1),
            valid=self.valid.repeat(times, 1),
            counts=self.counts * times,
        )


_ARANGE_CACHE: dict[tuple[int, torch.device, torch.dtype], Tensor] = {}


def cached_arange(n: int, device: torch.device, dtype: torch.dtype = torch.int64) -> Tensor:
    """torch.arange(n) on `device`, cached: the assigners need small index ranges (batch size,
    k) at every call, and each tensor operation has a fixed cost on the CPU. Never write to it."""
    key = (n, device, dtype)
    cached = _ARANGE_CACHE.get(key)
    if cached is None:
        if len(_ARANGE_CACHE) > 64:
            _ARANGE_CACHE.clear()
        cached = _ARANGE_CACHE[key] = torch.arange(n, device=device, dtype=dtype)
    return cached


def _on(tensor: Tensor, device: torch.device, dtype: torch.dtype, shape: tuple[int, ...]) -> Tensor:
    """`tensor.to(device, dtype).reshape(shape)`, skipping the calls where they would change nothing:
    each tensor operation has a fixed cost, and this runs for every assigner call."""
    same_layout = tensor.ndim == len(shape) and tensor.shape[1:] == shape[1:]
    if same_layout and tensor.device == device and tensor.dtype == dtype:
        return tensor
    return tensor.to(device, dtype).reshape(shape)


def pad_targets(targets: Targets, device: torch.device) -> PaddedTargets:
    """Stack per-image targets into padded (B, T, ...) tensors on `device`."""
    counts = [int(t["labels"].shape[0]) for t in targets]
    boxes = [_on(t["boxes"], device, torch.float32, (-1, 4)) for t in targets]
    labels = [_on(t["labels"], device, torch.int64, (-1,)) for t in targets]
    if counts and len(set(counts)) == 1:  # no padding: a plain stack (cheaper; this runs for every assigner call)
        boxes, labels = torch.stack(boxes), torch.stack(labels)
        valid = torch.ones(labels.shape, dtype=torch.bool, device=device)
        return PaddedTargets(boxes=boxes, labels=labels, valid=valid, counts=counts)
    boxes = pad_sequence(boxes, batch_first=True)
    labels = pad_sequence(labels, batch_first=True)
    valid = torch.arange(boxes.shape[1], device=device) < torch.tensor(counts, device=device)[:, None]
    boxes = torch.where(valid[..., None], boxes, torch.tensor(_PAD_BOX, device=device))
    return PaddedTargets(boxes=boxes, labels=labels, valid=valid, counts=counts)


def class_agnostic(targets: Targets) -> Targets:
    """Same boxes, every label set to 0 (the two-stage encoder's single 'object' class)."""
    return [{**t, "labels": torch.zeros_like(t["labels"])} for t in targets]


def check_targets(targets: Targets, batch_size: int, num_classes: int) -> None:
    """Raise `MsdetrError` naming the image when targets do not follow the convention."""
    if len(targets) != batch_size:
        raise MsdetrError(
            f"targets: batch: {len(targets)} target dicts for {batch_size} images; "
            "pass exactly one dict with 'boxes' and 'labels' per image"
        )
    for i, t in enumerate(targets):
        if "boxes" not in t or "labels" not in t:
            raise MsdetrError(
                f"targets: image {i}: missing 'boxes' or 'labels'; give both keys (may be empty)"
            )
        boxes, labels = t["boxes"], t["labels"]
        if boxes.ndim != 2 or boxes.shape[-1] != 4 or labels.ndim != 1 or labels.shape[0] != boxes.shape[0]:
            raise MsdetrError(
                f"targets: image {i}: boxes {tuple(boxes.shape)} and labels {tuple(labels.shape)} "
                "do not fit; expected boxes (n, 4) and labels (n,)"
            )
        if labels.dtype.is_floating_point or labels.dtype == torch.bool:
            raise MsdetrError(
                f"targets: image {i}: labels have dtype {labels.dtype}; use int64 class indices"
            )
    all_labels = torch.cat([t["labels"].reshape(-1) for t in targets])
    if all_labels.numel() == 0:
        return
    low, high = torch.stack(torch.aminmax(all_labels)).tolist()  # one transfer
    if low < 0 or high >= num_classes:
        bad = low if low < 0 else high
        image = next(i for i, t in enumerate(targets) if bool((t["labels"] == bad).any()))
        raise MsdetrError(
            f"targets: image {image}: label {bad} is outside [0, {num_classes}); "
            "map dataset categories to class indices below model.num_classes"
        )
