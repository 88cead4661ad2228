"""Validation images with predicted boxes drawn (torchvision's draw_bounding_boxes)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.ops import box_convert, nms
from torchvision.utils import draw_bounding_boxes

from msdetr.data.collate import collate
from msdetr.evaluation.evaluate import predict_batches
from msdetr.evaluation.postprocess import Detections
from msdetr.inference.drawing import draw_detections as draw_boxes
from msdetr.inference.drawing import save_image

VIS_NMS_IOU = 0.5  # NMS for drawing only (class-wise, then across classes), so one object shows one box


def draw_detections(image_path: str | Path, detections: Detections, class_names: list[str] | None,
                    score_threshold: float, out_path: str | Path, max_boxes: int = 20,
                    ground_truth: torch.Tensor | None = None) -> Path:  # fmt: skip
    """Draw the best `max_boxes` detections scoring at least `score_threshold` (boxes in pixels of
    the file, coloured by class) on the image file, ground-truth boxes (K, 4) xyxy pixels in thin
    white if given; save as PNG."""
    pixels = torch.from_numpy(np.array(Image.open(image_path).convert("RGB"))).permute(2, 0, 1)
    if ground_truth is not None and len(ground_truth):
        pixels = draw_bounding_boxes(pixels, ground_truth.float(), colors="white", width=1)
    keep = (detections.scores >= score_threshold).nonzero().flatten()
    # One box per object in the picture: class-agnostic NMS (for drawing only; metrics use all detections).
    keep = keep[nms(detections.boxes[keep].float(), detections.scores[keep].float(), VIS_NMS_IOU)][:max_boxes]
    labels = detections.labels[keep]
    names = [class_names[c] if class_names and c < len(class_names) and class_names[c] else str(c)
             for c in labels.tolist()]  # fmt: skip
    pixels = draw_boxes(pixels, detections.boxes[keep], labels, names, detections.scores[keep])
    return save_image(pixels, out_path)


def draw_validation_predictions(model, dataset, count: int, out_dir: Path, device: torch.device,
                                amp: str = "none", score_threshold: float = 0.3) -> list[Path]:  # fmt: skip
    """Predict the first `count` images of `dataset` (a `CocoDataset`) and draw them into
    `out_dir`, with their ground truth in thin white."""
    count = min(count, len(dataset))
    subset = torch.utils.data.Subset(dataset, list(range(count)))
    loader = torch.utils.data.DataLoader(subset, batch_size=min(count, 4), collate_fn=collate)
    found: dict[int, Detections] = {}
    predict_batches(model, loader, device, amp, topk=100, nms_iou=VIS_NMS_IOU,
                    on_batch=lambda ids, d: found.update(zip(ids, d)))  # fmt: skip
    paths = []
    for i in range(count):
        _, target = dataset[i]
        height, width = target["orig_size"].tolist()
        scale = torch.tensor([width, height, width, height], dtype=torch.float32)
        truth = box_convert(target["boxes"], "cxcywh", "xyxy") * scale  # eval resize only: same relative boxes
        path = dataset.image_path(i)
        paths.append(draw_detections(path, found[dataset.image_ids[i]], dataset.class_names, score_threshold,
                                     Path(out_dir) / f"{path.stem}.png", ground_truth=truth))  # fmt: skip
    return paths
