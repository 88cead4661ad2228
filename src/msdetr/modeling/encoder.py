"""Deformable transformer encoder over the flattened multi-level features."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from msdetr.ops.ms_deform_attn import MultiScaleDeformableAttention


def activation_fn(name: str):
    return {"relu": F.relu, "gelu": F.gelu}[name]


class EncoderLayer(nn.Module):
    """Deformable self-attention -> add & norm -> FFN -> add & norm (post-norm)."""

    def __init__(self, hidden_dim: int, dim_feedforward: int, dropout: float, activation: str,
                 num_levels: int, num_heads: int, num_points: int):
        super().__init__()
        self.self_attn = MultiScaleDeformableAttention(hidden_dim, num_levels, num_heads, num_points)
        self.dropout1 = nn.Dropout(dropout)
        self.norm1 = nn.LayerNorm(hidden_dim)
        self.linear1 = nn.Linear(hidden_dim, dim_feedforward)
        self.activation = activation_fn(activation)
        self.dropout2 = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, hidden_dim)
        self.dropout3 = nn.Dropout(dropout)
        self.norm2 = nn.LayerNorm(hidden_dim)

    def forward(self, src: Tensor, pos: Tensor, reference_points: Tensor,
                spatial_shapes: list[tuple[int, int]], padding_mask: Tensor) -> Tensor:
        """src, pos: (B, S, D); reference_points: (B, S, L, 2); padding_mask: (B, S). Returns (B, S, D)."""
        src = self.norm1(src + self.dropout1(
            self.self_attn(src + pos, reference_points, src, spatial_shapes, padding_mask)))
        ffn = self.linear2(self.dropout2(self.activation(self.linear1(src))))
        return self.norm2(src + self.dropout3(ffn))


class DeformableEncoder(nn.Module):
    """Stack of encoder layers; also owns the per-level embedding added to positions."""

    def __init__(self, num_layers: int, hidden_dim: int, dim_feedforward: int, dropout: float,
                 activation: str, num_levels: int, num_heads: int, num_points: int):
        super().__init__()
        self.level_embed = nn.Parameter(torch.empty(num_levels, hidden_dim))
        nn.init.normal_(self.level_embed)
        self.layers = nn.ModuleList(
            EncoderLayer(hidden_dim, dim_feedforward, dropout, activation, num_levels, num_heads, num_points)
            for _ in range(num_layers)
        )

    @staticmethod
    def reference_points(spatial_shapes: list[tuple[int, int]], valid_ratios: Tensor) -> Tensor:
        """Pixel centres of every level, normalized to the valid area.

        valid_ratios: (B, L, 2) valid (w, h) fraction per level
        returns:      (B, S, L, 2)
        """
        device = valid_ratios.device
        points = []
        for level, (h, w) in enumerate(spatial_shapes):
            ref_y, ref_x = torch.meshgrid(
                torch.arange(h, dtype=torch.float32, device=device) + 0.5,
                torch.arange(w, dtype=torch.float32, device=device) + 0.5,
                indexing="ij",
            )
            ref_y = ref_y.reshape(-1)[None] / (valid_ratios[:, None, level, 1] * h)
            ref_x = ref_x.reshape(-1)[None] / (valid_ratios[:, None, level, 0] * w)
            points.append(torch.stack((ref_x, ref_y), -1))
        return torch.cat(points, 1)[:, :, None] * valid_ratios[:, None]

    def forward(self, src: Tensor, pos: Tensor, spatial_shapes: list[tuple[int, int]],
                valid_ratios: Tensor, padding_mask: Tensor) -> Tensor:
        """
        src:          (B, S, D) flattened features of all levels
        pos:          (B, S, D) position embedding incl. level embedding
        valid_ratios: (B, L, 2)
        padding_mask: (B, S) bool, True on padding
        returns:      (B, S, D) memory
        """
        reference_points = self.reference_points(spatial_shapes, valid_ratios)
        out = src
        for layer in self.layers:
            out = layer(out, pos, reference_points, spatial_shapes, padding_mask)
        return out
