"""The inference graph that gets exported: images in, post-processed detections out.

Only the final one-to-one predictions are computed (no one-to-many stream, no
training-only outputs); deformable attention runs through `grid_sample`.
"""

from __future__ import annotations

import copy
from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from msdetr.modeling.detector import DeformableDETR
from msdetr.modeling.outputs import MaskPredictions


class InferenceGraph(nn.Module):
    """Detector + top-k post-processing for unpadded images.

    forward(images):
        images: (B, 3, H, W) float32, resized and normalized like evaluation, no padding
        returns boxes (B, K, 4) float32 (x0, y0, x1, y1) in pixels of the input,
                scores (B, K) float32 sigmoid scores, descending,
                labels (B, K) int64 class indices,
                and, for a detector with a mask head, masks (B, K, H, W) bool at the input's
                resolution (mask logit > 0, as `evaluation.mask_postprocess`),
        with K = min(topk, num_queries * num_classes) over all (query, class) pairs (fewer at a
        fixed size so small that a two-stage detector has fewer queries than num_queries).
    """

    def __init__(self, detector: DeformableDETR, topk: int = 100):
        super().__init__()
        # The graph never sees padding, so the per-image (padding-invariant) backbone path,
        # a data-dependent branch, is not needed: without padding both paths are the same.
        # A shallow copy: the submodules (and their train/eval mode) are shared with `detector`.
        exported = copy.copy(detector)
        exported.cfg = replace(detector.cfg, padding_invariant=False)
        self.detector = exported.eval()
        self.num_classes = int(detector.cfg.num_classes)
        self.topk = min(int(topk), int(detector.cfg.num_queries) * self.num_classes)

    @property
    def output_names(self) -> list[str]:
        names = ["boxes", "scores", "labels"]
        return names + ["masks"] if self.detector.mask_head is not None else names

    def forward(self, images: Tensor) -> tuple[Tensor, ...]:
        pixel_mask = torch.zeros_like(images[:, 0], dtype=torch.bool)
        output = self.detector(images, pixel_mask, all_streams=False)
        logits, boxes = output.logits.float(), output.boxes.float()
        batch, pairs = logits.shape[0], logits.shape[1] * self.num_classes
        # two-stage on a small input: fewer queries than num_queries (one per encoder token). A
        # fixed-size export fixes that count (the tracer's size tensor); a dynamic one keeps K = self.topk
        k = self.topk if isinstance(pairs, torch.SymInt) else min(self.topk, int(pairs))
        scores, index = logits.sigmoid().reshape(batch, -1).topk(k, dim=1)
        query = torch.div(index, self.num_classes, rounding_mode="floor")
        labels = index - query * self.num_classes
        picked = torch.gather(boxes, 1, query.unsqueeze(-1).expand(-1, -1, 4))
        cx, cy, w, h = picked.unbind(-1)
        xyxy = torch.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], dim=-1)
        height, width = images.shape[-2], images.shape[-1]
        one = xyxy.new_ones(())
        scale = torch.stack([one * width, one * height, one * width, one * height])  # (4,), traced sizes
        if output.masks is None:
            return xyxy * scale, scores, labels
        return xyxy * scale, scores, labels, _top_masks(output.masks, query, height, width)


def _top_masks(masks: MaskPredictions, query: Tensor, height, width) -> Tensor:
    """(B, K, H, W) bool masks of the picked queries (B, K) on an unpadded (H, W) input."""
    embed = torch.gather(masks.query_embed[-1].float(), 1,
                         query.unsqueeze(-1).expand(-1, -1, masks.query_embed.shape[-1]))
    logits = torch.einsum("bkm,bmhw->bkhw", embed, masks.pixel_embed.float())
    logits = F.interpolate(logits, scale_factor=float(masks.stride), mode="bilinear", align_corners=False)
    return logits[:, :, :height, :width] > 0
