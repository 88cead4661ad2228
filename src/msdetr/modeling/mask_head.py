"""Mask head of Mask-Deformable-DETR: mask = per-query embedding . per-pixel embedding.

Design (the query-embedding x pixel-embedding head of Mask2Former / MaskDINO, as H-DETR
describes Mask-Deformable-DETR):

- pixel embeddings: the encoder output of the highest-resolution feature level (stride 8,
  or 4 with `backbone.return_stride4`) through conv3x3 -> GroupNorm -> ReLU -> conv1x1;
  one map per image, shared by every decoder layer and stream.
- query embeddings: a 3-layer MLP on each decoder layer's output (shared by all layers and by
  the one-to-many stream, as the class head of MS-DETR is shared).

The detector returns both factors (`MaskPredictions`), never the dense (L, B, Q, H, W) logits:
losses and matching evaluate them at sampled points, inference at the top-k queries only.
"""

from __future__ import annotations

from torch import Tensor, nn

from msdetr.modeling.heads import MLP
from msdetr.modeling.norm import GroupNorm
from msdetr.modeling.outputs import MaskPredictions


class MaskHead(nn.Module):
    """hidden_dim: D of the encoder/decoder; mask_dim: M of the embeddings; stride: of the
    highest-resolution feature level (input pixels per map pixel)."""

    def __init__(self, hidden_dim: int, mask_dim: int, stride: int):
        super().__init__()
        self.stride = stride
        self.pixel_proj = nn.Sequential(
            nn.Conv2d(hidden_dim, hidden_dim, 3, padding=1, bias=False),
            GroupNorm(32, hidden_dim),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden_dim, mask_dim, 1),
        )
        self.query_embed = MLP(hidden_dim, hidden_dim, mask_dim, 3)
        for m in self.pixel_proj.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_uniform_(m.weight, a=1)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def pixel_embedding(self, memory: Tensor, spatial_shapes: list[tuple[int, int]]) -> Tensor:
        """memory: (B, S, D) encoder output, level 0 first -> (B, M, H_0, W_0)."""
        h, w = spatial_shapes[0]
        level0 = memory[:, : h * w].transpose(1, 2).reshape(memory.shape[0], -1, h, w)
        return self.pixel_proj(level0)

    def forward(self, hidden: Tensor, pixel_embed: Tensor) -> MaskPredictions:
        """hidden: (L, B, Q, D) decoder outputs; pixel_embed: (B, M, H, W) -> `MaskPredictions`."""
        return MaskPredictions(self.query_embed(hidden), pixel_embed, self.stride)
