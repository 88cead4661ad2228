"""Run a detector over a validation loader and compute COCO metrics.

Each batch's final one-to-one predictions are post-processed into detections in pixels of
the original image files (`target["orig_size"]`), so padding and the evaluation resize
cancel out. Under `torchrun` every rank evaluates its share; metrics come back on every rank.
With `progress`, rank 0 shows a tqdm bar over its images, then "COCO scoring" while the
metrics are computed.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from msdetr import collectives
from msdetr.autocast import autocast
from msdetr.evaluation.coco_eval import CocoEvaluator, CocoMetrics
from msdetr.evaluation.postprocess import Detections, postprocess


@torch.no_grad()
def predict_batches(
    model: nn.Module,
    loader: DataLoader,
    device: torch.device,
    amp: str = "none",
    topk: int = 100,
    nms_iou: float | None = None,
    on_batch: Callable[[list[int], list[Detections]], None] | None = None,
) -> None:
    """Detections per image for every batch of `loader`, passed to `on_batch(image_ids, detections)`.

    Boxes are (x0, y0, x1, y1) in pixels of the original image; with a mask head each detection
    also has its mask at the original image size.
    """
    was_training = model.training
    model.eval()
    try:
        for batch in loader:
            batch = batch.to(device, non_blocking=True)
            with autocast(amp, device):
                output = model(batch.images, batch.pixel_mask, all_streams=False)
            sizes = torch.stack([t["orig_size"] for t in batch.targets]).to(device)
            input_sizes = torch.stack([t["size"] for t in batch.targets]).to(device)
            detections = postprocess(output.logits.float(), output.boxes.float(), sizes, topk=topk, nms_iou=nms_iou,
                                     masks=output.masks, input_sizes=input_sizes)
            image_ids = [int(t["image_id"]) for t in batch.targets]
            if on_batch is not None:
                on_batch(image_ids, [d.to("cpu") for d in detections])
    finally:
        model.train(was_training)


def _images_of(loader: DataLoader) -> int | None:
    """Images this rank evaluates (its shard), None when the loader cannot tell."""
    try:
        return len(loader.sampler)
    except TypeError:
        return None


def evaluate(
    model: nn.Module,
    loader: DataLoader,
    evaluator: CocoEvaluator,
    device: torch.device,
    amp: str = "none",
    topk: int = 100,
    nms_iou: float | None = None,
    progress: bool = False,
) -> CocoMetrics:
    """COCO metrics of `model` on `loader` (all ranks together); the same metrics on every rank.
    progress: show a progress bar (rank 0 only; transient, it disappears when done)."""
    bar = None
    if progress and (not collectives.is_initialized() or torch.distributed.get_rank() == 0):
        bar = tqdm(total=_images_of(loader), desc="eval", unit="img", dynamic_ncols=True, leave=False,
                   file=sys.stderr)

    def on_batch(image_ids: Sequence[int], detections: Sequence[Detections]) -> None:
        evaluator.add(image_ids, detections)
        if bar is not None:
            bar.update(len(image_ids))

    try:
        predict_batches(model, loader, device, amp, topk, nms_iou, on_batch=on_batch)
        if bar is not None:
            bar.set_postfix_str("COCO scoring")
        metrics = evaluator.compute()
    finally:
        if bar is not None:
            bar.close()
    return collectives.broadcast_from_main(metrics)
