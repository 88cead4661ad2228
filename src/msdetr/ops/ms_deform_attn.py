"""Multi-scale deformable attention (Deformable DETR), pure PyTorch.

The sampling runs through `torch.nn.functional.grid_sample`, so it works on any
device (CPU, CUDA, MPS) and exports to ONNX; no compiled extension is needed.
The sampling and weighting run in float32 even under autocast.

Shapes: N batch, Lq queries, S = sum(H_l * W_l) value tokens over L levels,
M heads, P points per head and level, D = hidden_dim / M.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def ms_deform_attn_sample(
    value: Tensor,
    spatial_shapes: list[tuple[int, int]],
    sampling_locations: Tensor,
    attention_weights: Tensor,
) -> Tensor:
    """Bilinearly sample every level at the given locations and mix them.

    value:              (N, S, M, D)
    spatial_shapes:     L pairs (H_l, W_l), sum of H_l * W_l == S
    sampling_locations: (N, Lq, M, L, P, 2) as (x, y) in [0, 1] of each level's
                        (padded) map; outside points read zeros.
    attention_weights:  (N, Lq, M, L, P), normalized over L * P.
    returns:            (N, Lq, M * D)
    """
    n, _, m, d = value.shape
    _, lq, _, num_levels, p, _ = sampling_locations.shape
    values = value.split([h * w for h, w in spatial_shapes], dim=1)
    grids = 2.0 * sampling_locations - 1.0  # grid_sample wants [-1, 1]
    sampled = []
    for level, (h, w) in enumerate(spatial_shapes):
        # (N, H*W, M, D) -> (N*M, D, H, W)
        v = values[level].flatten(2).transpose(1, 2).reshape(n * m, d, h, w)
        # (N, Lq, M, P, 2) -> (N*M, Lq, P, 2)
        g = grids[:, :, :, level].transpose(1, 2).flatten(0, 1)
        sampled.append(F.grid_sample(v, g, mode="bilinear", padding_mode="zeros", align_corners=False))
    # (N*M, D, Lq, L*P) weighted by (N*M, 1, Lq, L*P)
    stacked = torch.stack(sampled, dim=-2).flatten(-2)
    weights = attention_weights.transpose(1, 2).reshape(n * m, 1, lq, num_levels * p)
    out = (stacked * weights).sum(-1).view(n, m * d, lq)
    return out.transpose(1, 2).contiguous()


class MultiScaleDeformableAttention(nn.Module):
    """Deformable attention over L feature levels (any hidden size, heads, levels, points).

    Parameter names follow the official implementation (`sampling_offsets`,
    `attention_weights`, `value_proj`, `output_proj`).
    """

    def __init__(self, hidden_dim: int = 256, num_levels: int = 4, num_heads: int = 8, num_points: int = 4):
        super().__init__()
        if hidden_dim % num_heads != 0:
            raise ValueError(f"hidden_dim ({hidden_dim}) must be divisible by num_heads ({num_heads})")
        self.hidden_dim = hidden_dim
        self.num_levels = num_levels
        self.num_heads = num_heads
        self.num_points = num_points
        self.sampling_offsets = nn.Linear(hidden_dim, num_heads * num_levels * num_points * 2)
        self.attention_weights = nn.Linear(hidden_dim, num_heads * num_levels * num_points)
        self.value_proj = nn.Linear(hidden_dim, hidden_dim)
        self.output_proj = nn.Linear(hidden_dim, hidden_dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Offsets start on a ring of directions, one per head, growing with the point index."""
        nn.init.zeros_(self.sampling_offsets.weight)
        angles = torch.arange(self.num_heads, dtype=torch.float32) * (2.0 * math.pi / self.num_heads)
        grid = torch.stack([angles.cos(), angles.sin()], -1)
        grid = grid / grid.abs().max(-1, keepdim=True)[0]
        grid = grid.view(self.num_heads, 1, 1, 2).repeat(1, self.num_levels, self.num_points, 1)
        grid = grid * torch.arange(1, self.num_points + 1, dtype=torch.float32).view(1, 1, -1, 1)
        with torch.no_grad():
            self.sampling_offsets.bias.copy_(grid.flatten())
        nn.init.zeros_(self.attention_weights.weight)
        nn.init.zeros_(self.attention_weights.bias)
        nn.init.xavier_uniform_(self.value_proj.weight)
        nn.init.zeros_(self.value_proj.bias)
        nn.init.xavier_uniform_(self.output_proj.weight)
        nn.init.zeros_(self.output_proj.bias)

    def forward(
        self,
        query: Tensor,
        reference_points: Tensor,
        value_input: Tensor,
        spatial_shapes: list[tuple[int, int]],
        padding_mask: Tensor | None = None,
    ) -> Tensor:
        """
        query:            (N, Lq, C) queries (content + position)
        reference_points: (N, Lq, L, 2) points (x, y) or (N, Lq, L, 4) boxes (cx, cy, w, h),
                          normalized to each level's valid area
        value_input:      (N, S, C) flattened multi-level features
        spatial_shapes:   L pairs (H_l, W_l)
        padding_mask:     (N, S) bool, True on padding (values there are zeroed)
        returns:          (N, Lq, C)
        """
        n, lq, _ = query.shape
        m, num_levels, p = self.num_heads, self.num_levels, self.num_points
        value = self.value_proj(value_input)
        if padding_mask is not None:
            value = value.masked_fill(padding_mask[..., None], 0.0)
        value = value.view(n, value.shape[1], m, self.hidden_dim // m)
        offsets = self.sampling_offsets(query).view(n, lq, m, num_levels, p, 2)
        weights = self.attention_weights(query).view(n, lq, m, num_levels * p)
        with torch.autocast(device_type=query.device.type, enabled=False):
            weights = weights.float().softmax(-1).view(n, lq, m, num_levels, p)
            offsets = offsets.float()
            ref = reference_points.float()
            if ref.shape[-1] == 2:
                wh = torch.tensor([[w, h] for h, w in spatial_shapes], dtype=torch.float32, device=query.device)
                locations = ref[:, :, None, :, None, :] + offsets / wh[None, None, None, :, None, :]
            elif ref.shape[-1] == 4:
                locations = ref[:, :, None, :, None, :2] + offsets / p * ref[:, :, None, :, None, 2:] * 0.5
            else:
                raise ValueError(f"reference_points must end in 2 or 4 values, got {tuple(ref.shape)}")
            out = ms_deform_attn_sample(value.float(), spatial_shapes, locations, weights)
        return self.output_proj(out.to(query.dtype))
