"""Denoising supervision (DN-DETR, DINO CDN): every decoder layer of the `denoising` stream
reconstructs the objects its queries were noised from; no matching, the provider's record says
which query belongs to which object (its `DenoisingMeta.noised` in `DetectorOutput.query_meta["denoising"]`).

- "dn" (DN-DETR): only the denoising copies are supervised (padding slots get no loss); each
  reconstructs its object's class and box.
- "cdn" (DINO): all denoising queries get the classification loss (positives: their object's
  class, negatives and padding: no object); positives also get the box losses.

Normalization: DN-DETR and DINO divide the denoising terms by N * groups (N: objects in the
batch; DINO averages N over ranks): `normalization="groups"`. "targets" divides by N only, as
every other stream.
"""

from __future__ import annotations

import torch

from msdetr.methods.contracts import DENOISING, DenoisingMeta, NoisedTargets
from msdetr.modeling.outputs import DetectorOutput
from msdetr.supervision.base import Assignment, LayerPredictions, SupervisionTask, Targets
from msdetr.supervision.layers import stream_tasks


class DenoisingSupervision:
    """Tasks of the `denoising` stream (none when the output has no such stream)."""

    def __init__(self, normalization: str = "groups", stream: str = DENOISING) -> None:
        if normalization not in ("groups", "targets"):
            raise ValueError(f"denoising normalization {normalization!r}: use 'groups' or 'targets'")
        self.normalization = normalization
        self.stream = stream

    def plan(self, output: DetectorOutput, targets: Targets) -> list[SupervisionTask]:
        if self.stream not in output.streams:
            return []
        meta = DenoisingMeta.of(output.query_meta[self.stream])
        noised = meta.noised
        stream = output.streams[self.stream]
        scale = float(noised.num_groups) if self.normalization == "groups" else 1.0
        if meta.method == "dn":
            select, task_targets, assignment = _copies_only(noised, targets, stream.logits.device)
        else:
            select, task_targets, assignment = None, targets, _positive_pairs(noised, len(targets))
        predictions = []
        for layer in range(stream.num_layers):
            logits, boxes = stream.logits[layer], stream.boxes[layer]
            if select is not None:  # (1, M, ...): the copies as one "image"
                logits, boxes = logits[select][None], boxes[select][None]
            predictions.append(LayerPredictions(logits, boxes))
        return stream_tasks(None, self.stream, task_targets, [assignment] * stream.num_layers, predictions,
                            normalizer_scale=scale)


def _positive_pairs(noised: NoisedTargets, batch: int) -> Assignment:
    """Per image (denoising query, object) of the positive copies, in copy order."""
    pairs = []
    for image in range(batch):
        keep = noised.positive & (noised.image == image)
        pairs.append((noised.query[keep], noised.target[keep]))
    return pairs


def _copies_only(noised: NoisedTargets, targets: Targets, device: torch.device):
    """DN-DETR: the M copies as one batch entry, each assigned to its own object."""
    offsets = torch.tensor([0] + [len(t["labels"]) for t in targets], device=noised.image.device).cumsum(0)
    flat = offsets[noised.image] + noised.target
    boxes = torch.cat([t["boxes"] for t in targets])[flat.to(targets[0]["boxes"].device)]
    labels = torch.cat([t["labels"] for t in targets])[flat.to(targets[0]["labels"].device)]
    index = torch.arange(len(flat), device=device)
    select = (noised.image.to(device), noised.query.to(device))
    return select, [{"boxes": boxes, "labels": labels}], [(index, index)]
