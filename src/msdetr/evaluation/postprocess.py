"""Turn raw detector outputs into detections in pixel coordinates."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torchvision.ops import batched_nms, box_convert

from msdetr.evaluation.mask_postprocess import detection_masks
from msdetr.modeling.outputs import MaskPredictions


@dataclass
class Detections:
    """Detections of one image.

    boxes:  (K, 4) (x0, y0, x1, y1) in pixels of the requested size
    scores: (K,) sigmoid scores, descending
    labels: (K,) int64 class indices
    masks:  (K, H, W) bool instance masks at the requested size (mask head only), else None
    """

    boxes: Tensor
    scores: Tensor
    labels: Tensor
    masks: Tensor | None = None

    def to(self, device) -> Detections:
        masks = self.masks.to(device) if self.masks is not None else None
        return Detections(self.boxes.to(device), self.scores.to(device), self.labels.to(device), masks)


@torch.no_grad()
def postprocess(logits: Tensor, boxes: Tensor, sizes: Tensor, topk: int = 100,
                nms_iou: float | None = None, pre_nms_topk: int = 10000,
                masks: MaskPredictions | None = None, input_sizes: Tensor | None = None) -> list[Detections]:
    """Top-k over all (query, class) pairs, boxes scaled to pixels.

    logits: (B, Q, C); boxes: (B, Q, 4) normalized (cx, cy, w, h)
    sizes:  (B, 2) (height, width) to scale to, e.g. the original image size
    topk:   detections kept per image (at most Q * C)
    nms_iou: if set, class-wise NMS at this IoU over the best `pre_nms_topk`
            pairs (any Q x C, also fewer than pre_nms_topk), then top-k.
    masks:  the detector's masks (mask head): each detection also gets its (H, W) bool mask
            at `sizes`; input_sizes (B, 2) (h, w) of each image's unpadded model input is then
            required (see `mask_postprocess`).
    """
    if masks is not None and input_sizes is None:
        raise ValueError("postprocess: masks need input_sizes (the unpadded input size of each image)")
    b, q, c = logits.shape
    prob = logits.float().sigmoid().view(b, q * c)
    xyxy = box_convert(boxes.float(), "cxcywh", "xyxy")
    h, w = sizes.float().unbind(1)
    xyxy = xyxy * torch.stack([w, h, w, h], 1)[:, None, :]
    k = min(topk, q * c) if nms_iou is None else min(pre_nms_topk, q * c)
    scores, index = prob.topk(k, dim=1)
    query, labels = index // c, index % c
    picked = torch.gather(xyxy, 1, query[..., None].expand(-1, -1, 4))
    results = []
    for i in range(b):
        det = Detections(picked[i], scores[i], labels[i])
        queries = query[i]
        if nms_iou is not None:
            keep = batched_nms(det.boxes, det.scores, det.labels, nms_iou)[:topk]
            det = Detections(det.boxes[keep], det.scores[keep], det.labels[keep])
            queries = queries[keep]
        if masks is not None:
            det.masks = detection_masks(masks, i, queries, tuple(input_sizes[i].tolist()),
                                        tuple(sizes[i].tolist()))
        results.append(det)
    return results
