"""A loaded detector: preprocessing, the model's final one-to-one predictions, detections.

`msdetr.load` (in `msdetr.api`) builds one from a checkpoint.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from msdetr.evaluation.postprocess import postprocess
from msdetr.inference.image_source import to_rgb_tensor
from msdetr.inference.preprocess import EvalPreprocessor
from msdetr.inference.settings import InferenceSettings


@dataclass
class ImageDetections:
    """Detections of one image, sorted by descending score.

    boxes:        (K, 4) float32 (x0, y0, x1, y1) in pixels of the original image,
                  clipped to it
    scores:       (K,) float32 in [0, 1]
    labels:       (K,) int64 class indices of the model
    names:        K class names ("3" when the checkpoint has no name for class 3)
    category_ids: K dataset category ids (as in the training annotations)
    image_size:   (height, width) of the original image
    masks:        (K, H, W) bool instance masks at the original image size (models with a mask
                  head), else None
    """

    boxes: Tensor
    scores: Tensor
    labels: Tensor
    names: list[str]
    category_ids: list[int]
    image_size: tuple[int, int]
    masks: Tensor | None = None

    def __len__(self) -> int:
        return int(self.scores.shape[0])


class Detector:
    """A loaded detector with its class names and preprocessing; see `load`.

    model: the `DeformableDETR` module (eval mode); settings: resize, top-k and NMS;
    class_names / category_ids: per class index (None when the checkpoint has none).
    """

    def __init__(self, model: nn.Module, settings: InferenceSettings, class_names: list[str] | None = None,
                 category_ids: list[int] | None = None):
        self.model = model.eval()
        self.settings = settings
        self.class_names = class_names
        self.category_ids = category_ids

    @property
    def preprocessor(self) -> EvalPreprocessor:
        """Evaluation resize and normalization from `settings.transforms` (edit those to change it)."""
        return EvalPreprocessor(self.settings.transforms)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def num_classes(self) -> int:
        return int(self.model.cfg.num_classes)

    def to(self, device: str | torch.device) -> Detector:
        """Move the model to `device` ("cpu", "cuda", "cuda:1", "mps"); returns self."""
        self.model.to(device)
        return self

    def class_name(self, label: int) -> str:
        names = self.class_names
        if names and 0 <= label < len(names) and names[label]:
            return str(names[label])
        return str(label)

    def category_id(self, label: int) -> int:
        ids = self.category_ids
        if ids and 0 <= label < len(ids) and ids[label] is not None and ids[label] >= 0:
            return int(ids[label])
        return int(label)

    def predict(self, image, score: float = 0.3) -> ImageDetections | list[ImageDetections]:
        """Detections with score >= `score` for one image (path, PIL image, numpy array or
        tensor; see `msdetr.inference.image_source`), or a list of them for a list of images."""
        if isinstance(image, (list, tuple)):
            return self.predict_batch(image, score)
        return self.predict_batch([image], score)[0]

    def predict_batch(self, images: Sequence, score: float = 0.3) -> list[ImageDetections]:
        """Detections for several images, run as one padded batch."""
        rgbs = [to_rgb_tensor(image, what=f"image {i}") for i, image in enumerate(images)]
        return self.detect_rgb(rgbs, score)

    @torch.no_grad()
    def _final_output(self, rgbs: list[Tensor]):
        """(detector output, original sizes (B, 2), unpadded input sizes (B, 2)) for uint8 RGB images."""
        batch = self.preprocessor.batch(rgbs).to(self.device)
        self.model.eval()
        output = self.model(batch.images, batch.pixel_mask, all_streams=False)
        input_sizes = torch.stack([(~batch.pixel_mask[:, :, 0]).sum(1), (~batch.pixel_mask[:, 0, :]).sum(1)], 1)
        return output, batch.orig_sizes, input_sizes

    @torch.no_grad()
    def final_predictions(self, rgbs: list[Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        """Raw final-layer one-to-one predictions for B (3, H_i, W_i) uint8 RGB images.

        returns: logits (B, Q, C), boxes (B, Q, 4) normalized (cx, cy, w, h) relative to
                 each image, original sizes (B, 2) (height, width); all on `self.device`
        """
        batch = self.preprocessor.batch(rgbs).to(self.device)
        self.model.eval()
        output = self.model(batch.images, batch.pixel_mask, all_streams=False)
        return output.logits.float(), output.boxes.float(), batch.orig_sizes

    def detect_rgb(self, rgbs: list[Tensor], score: float = 0.3) -> list[ImageDetections]:
        """Detections for B (3, H_i, W_i) uint8 RGB tensors, run as one padded batch."""
        if not rgbs:
            return []
        output, orig_sizes, input_sizes = self._final_output(rgbs)
        settings = self.settings
        detections = postprocess(output.logits.float(), output.boxes.float(), orig_sizes, topk=settings.topk,
                                 nms_iou=settings.nms_iou, masks=output.masks, input_sizes=input_sizes)
        results = []
        for det, (height, width) in zip(detections, orig_sizes.tolist()):
            keep = det.scores >= score
            boxes = det.boxes[keep].float().cpu()
            boxes[:, 0::2] = boxes[:, 0::2].clamp(0, width)
            boxes[:, 1::2] = boxes[:, 1::2].clamp(0, height)
            labels = det.labels[keep].cpu()
            label_list = labels.tolist()
            results.append(ImageDetections(
                boxes=boxes,
                scores=det.scores[keep].float().cpu(),
                labels=labels,
                names=[self.class_name(c) for c in label_list],
                category_ids=[self.category_id(c) for c in label_list],
                image_size=(int(height), int(width)),
                masks=det.masks[keep].cpu() if det.masks is not None else None,
            ))
        return results
