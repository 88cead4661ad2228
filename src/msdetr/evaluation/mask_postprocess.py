"""Instance masks of the kept detections, in pixels of the original image.

For the K detections of an image: their queries' mask logits at the mask map's resolution
(K dot products with the pixel embeddings), taken on the map pixels covering the image's unpadded
input area (so batch padding never blends in), upsampled bilinearly by the map's stride, cropped to
that area, resized bilinearly to the original
image size and thresholded at logit 0 (probability 0.5), as DETR's segmentation post-processing.
Only the kept queries are decoded, so the cost is K masks per image, never Q.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from msdetr.modeling.outputs import MaskPredictions


@torch.no_grad()
def detection_masks(masks: MaskPredictions, image: int, queries: Tensor, input_size: tuple[int, int],
                    orig_size: tuple[int, int]) -> Tensor:
    """(K, H_orig, W_orig) bool masks of queries `queries` (K,) of image `image` (final layer).

    input_size: (h, w) of the image's unpadded area in the model's input.
    orig_size:  (H, W) of the original image.
    """
    height, width = int(orig_size[0]), int(orig_size[1])
    if queries.numel() == 0:
        return torch.zeros(0, height, width, dtype=torch.bool, device=queries.device)
    stride = masks.stride
    in_h, in_w = int(input_size[0]), int(input_size[1])
    # the map pixels that cover the image (its padding, if batched, never blends into the border)
    pixel = masks.pixel_embed[image, :, : -(-in_h // stride), : -(-in_w // stride)].float()  # (M, h_m, w_m)
    embed = masks.query_embed[-1, image, queries].float()  # (K, M)
    logits = torch.einsum("km,mhw->khw", embed, pixel)[None]
    logits = F.interpolate(logits, scale_factor=stride, mode="bilinear", align_corners=False)
    logits = logits[:, :, :in_h, :in_w]
    logits = F.interpolate(logits, size=(height, width), mode="bilinear", align_corners=False)
    return logits[0] > 0
