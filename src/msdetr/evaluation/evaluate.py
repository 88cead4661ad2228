"""Run a detector over a validation loader and compute COCO metrics.

Each batch's final one-to-one predictions are post-processed into detections in pixels of
the original image files (`target["orig_size"]`), so padding and the evaluation resize
cancel out. Under `torchrun` every rank evaluates its share; metrics come back on every rank.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.utils.data import DataLoader

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


def evaluate(
    model: nn.Module,
    loader: DataLoader,
    evaluator: CocoEvaluator,
    device: torch.device,
    amp: str = "none",
    topk: int = 100,
    nms_iou: float | None = None,
) -> CocoMetrics:
    """COCO metrics of `model` on `loader` (all ranks together); the same metrics on every rank."""
    predict_batches(model, loader, device, amp, topk, nms_iou, on_batch=evaluator.add)
    metrics = evaluator.compute()
    return collectives.broadcast_from_main(metrics)
