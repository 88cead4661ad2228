"""Candidate-box report over a dataset split: summary numbers and per-object pictures.

For each ground-truth object of the first N images of a split, every checkpoint's
final-layer query boxes are ranked by IoU with the object (`top_candidates`); the
pictures show the object and its top-k candidates, one panel per checkpoint, side
by side; the summary averages the top-1/5/20 IoUs over all objects.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor
from torchvision.ops import box_convert

from msdetr.data.coco_json import load_coco_json
from msdetr.data.image_io import ImageReadError, load_rgb
from msdetr.data.layout import SplitSource
from msdetr.errors import MsdetrError
from msdetr.inference.candidate_pictures import candidate_panel
from msdetr.inference.candidates import CandidateSummary, mean_topk_iou, top_candidates
from msdetr.inference.detector import Detector
from msdetr.inference.drawing import save_image, side_by_side


@dataclass
class AnnotatedImage:
    """One image of the split and its objects.

    boxes: (n, 4) xyxy in pixels of the image file; names: n category names.
    """

    image_id: int
    path: Path
    boxes: Tensor
    names: list[str]


def read_annotated_images(source: SplitSource, limit: int) -> list[AnnotatedImage]:
    """The first `limit` images (in file order) of a split that have non-crowd objects."""
    coco = load_coco_json(source.annotations)
    names = {c.get("id"): str(c.get("name", c.get("id"))) for c in coco["categories"]}
    per_image: dict = {}
    for ann in coco["annotations"]:
        if ann.get("iscrowd", 0) or "bbox" not in ann:
            continue
        x, y, w, h = (float(v) for v in ann["bbox"])
        if w <= 0 or h <= 0:
            continue
        name = names.get(ann.get("category_id"), "?")
        per_image.setdefault(ann.get("image_id"), []).append(([x, y, x + w, y + h], name))
    images = []
    for record in coco["images"]:
        objects = per_image.get(record.get("id"))
        if not objects:
            continue
        boxes = torch.tensor([box for box, _ in objects], dtype=torch.float32)
        images.append(AnnotatedImage(int(record["id"]), source.images / str(record["file_name"]), boxes,
                                     [name for _, name in objects]))
        if len(images) == limit:
            break
    if not images:
        raise MsdetrError(f"{source.annotations}: no image with annotated (non-crowd) objects; "
                          "candidates need ground-truth boxes")
    return images


def _normalized_cxcywh(boxes_xyxy: Tensor, height: int, width: int) -> Tensor:
    scale = boxes_xyxy.new_tensor([width, height, width, height])
    return box_convert(boxes_xyxy / scale, "xyxy", "cxcywh")


def candidate_report(detectors: dict[str, Detector], images: list[AnnotatedImage], out_dir: str | Path | None,
                     k: int = 20, batch_size: int = 4,
                     on_progress: Callable[[int], None] | None = None) -> dict[str, CandidateSummary]:
    """Summaries per checkpoint label; with `out_dir`, also one picture per object
    (`<image_id>_<object>.png`, a panel per checkpoint)."""
    summaries = {label: CandidateSummary() for label in detectors}
    for start in range(0, len(images), batch_size):
        chunk = images[start : start + batch_size]
        try:
            rgbs = [torch.from_numpy(load_rgb(item.path)).permute(2, 0, 1).contiguous() for item in chunk]
        except ImageReadError as err:
            raise MsdetrError(f"{chunk[0].path.parent}: an image of the split cannot be read ({err}); "
                              "check the dataset with msdetr data doctor") from None
        query_boxes = {label: det.final_predictions(rgbs)[1].cpu() for label, det in detectors.items()}
        for i, (item, rgb) in enumerate(zip(chunk, rgbs)):
            height, width = int(rgb.shape[-2]), int(rgb.shape[-1])
            objects = _normalized_cxcywh(item.boxes, height, width)
            panels_per_object: list[list[Tensor]] = [[] for _ in range(len(item.boxes))]
            for label, boxes in query_boxes.items():
                found = top_candidates(boxes[i], objects, max(k, *summaries[label].ranks))
                summaries[label].add(found)
                if out_dir is None:
                    continue
                scale = boxes.new_tensor([width, height, width, height])
                pixels = box_convert(boxes[i], "cxcywh", "xyxy") * scale
                drawn = min(k, found.ious.shape[1])
                top1, topk = found.ious[:, 0].tolist(), mean_topk_iou(found.ious, drawn).tolist()
                for j in range(len(item.boxes)):
                    title = (f"{label}: {item.names[j]}, best IoU {top1[j]:.2f}, "
                             f"mean of top-{drawn} {topk[j]:.2f}")
                    panel = candidate_panel(rgb, item.boxes[j], pixels[found.index[j, :drawn]], title)
                    panels_per_object[j].append(panel)
            if out_dir is not None:
                for j, panels in enumerate(panels_per_object):
                    save_image(side_by_side(panels), Path(out_dir) / f"{item.image_id}_{j}.png")
        if on_progress is not None:
            on_progress(len(chunk))
    return summaries
