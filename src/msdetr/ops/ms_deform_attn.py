"""Multi-scale deformable attention (Deformable DETR), pure PyTorch.

The sampling runs through `torch.nn.functional.grid_sample`, so it works on any
device (CPU, CUDA, MPS) and exports to ONNX; no compiled extension is needed.
The sampling and weighting run in float32 even under autocast.

The computation is the reference one (bilinear samples of every level, weighted
by the attention weights and summed), arranged for memory traffic: samples are
laid out queries-last, levels are never stacked, and the weighted sum is one
multiply-add per (level, point) with a matching hand-written backward. Under
tracing/export the weighting falls back to plain operators.

Shapes: N batch, Lq queries, S = sum(H_l * W_l) value tokens over L levels,
M heads, P points per head and level, D = hidden_dim / M.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _point_sum(sampled: list[Tensor], weights: Tensor) -> Tensor:
    """sum over levels l and points p of sampled[l][:, :, p] * weights[:, l, p], one multiply-add each.

    sampled: L tensors (B, D, P, Lq); weights: (B, L, P, Lq); returns (B, D, Lq).
    No (B, D, P, Lq) product is ever written: on the CPU this is several times
    faster than `(sampled * weights).sum()`, which is bound by memory traffic.
    """
    out = None
    for level, level_sampled in enumerate(sampled):
        for p in range(level_sampled.shape[2]):
            w = weights[:, level, p].unsqueeze(1)  # (B, 1, Lq)
            if out is None:
                out = level_sampled[:, :, p] * w
            else:
                out.addcmul_(level_sampled[:, :, p], w)
    return out


class _WeightedPointSum(torch.autograd.Function):
    """`_point_sum` with a backward pass that also avoids (B, D, P, Lq) temporaries."""

    @staticmethod
    def forward(ctx, weights: Tensor, *sampled: Tensor) -> Tensor:
        ctx.save_for_backward(weights, *sampled)
        return _point_sum(list(sampled), weights)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, ...]:
        """grad: (B, D, Lq) -> grads of weights (B, L, P, Lq) and of each level's (B, D, P, Lq)."""
        weights, *sampled = ctx.saved_tensors
        grad = grad.contiguous()  # often a transposed view: the loops below want rows of Lq
        grad_weights = torch.empty_like(weights) if ctx.needs_input_grad[0] else None
        grad_sampled = []
        for level, level_sampled in enumerate(sampled):
            needed = ctx.needs_input_grad[1 + level]
            grad_sampled.append(grad.unsqueeze(2) * weights[:, level].unsqueeze(1) if needed else None)
            if grad_weights is not None:
                # sum over D of grad * sampled, one multiply-add per channel
                out = grad_weights[:, level]
                torch.mul(level_sampled[:, 0], grad[:, 0, None], out=out)
                for c in range(1, level_sampled.shape[1]):
                    out.addcmul_(level_sampled[:, c], grad[:, c, None])
        return (grad_weights, *grad_sampled)


def _weighted_point_sum(sampled: list[Tensor], weights: Tensor) -> Tensor:
    """sampled: L tensors (B, D, P, Lq), weighted by weights (B, L, P, Lq), summed -> (B, D, Lq)."""
    if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export() or torch.compiler.is_compiling():
        # plain operators for the exporters
        out = (sampled[0] * weights[:, 0].unsqueeze(1)).sum(2)
        for level in range(1, len(sampled)):
            out = out + (sampled[level] * weights[:, level].unsqueeze(1)).sum(2)
        return out
    if torch.is_grad_enabled() and (weights.requires_grad or any(s.requires_grad for s in sampled)):
        return _WeightedPointSum.apply(weights, *sampled)
    return _point_sum(sampled, weights)


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
    return ms_deform_attn_sample_grids(value, spatial_shapes, 2.0 * sampling_locations - 1.0, attention_weights)


def ms_deform_attn_sample_grids(
    value: Tensor,
    spatial_shapes: list[tuple[int, int]],
    grids: Tensor,
    attention_weights: Tensor,
) -> Tensor:
    """`ms_deform_attn_sample` with the locations already in grid_sample's [-1, 1] convention.

    value:             (N, S, M, D)
    grids:             (N, Lq, M, L, P, 2) as (x, y), -1 and 1 the outer edges of each level's map
    attention_weights: (N, Lq, M, L, P) or (N, Lq, M, L * P)
    returns:           (N, Lq, M * D), a transposed view (not contiguous)
    """
    n, s, m, d = value.shape
    _, lq, _, num_levels, p, _ = grids.shape
    value_t = value.permute(0, 2, 3, 1).reshape(n, m * d, s)
    weights = attention_weights.reshape(n, lq, m * num_levels * p).transpose(1, 2)
    return _sample_transposed(value_t, spatial_shapes, grids, weights, m).transpose(1, 2)


def _sample_transposed(
    value: Tensor,
    spatial_shapes: list[tuple[int, int]],
    grids: Tensor,
    attention_weights: Tensor,
    num_heads: int,
) -> Tensor:
    """The sampling on channels-first layouts.

    value:             (N, M * D, S) values, channels first
    grids:             (N, Lq, M, L, P, 2) as (x, y) in [-1, 1]
    attention_weights: (N, M * L * P, Lq), normalized over L * P, queries last
    returns:           (N, M * D, Lq)

    Each level is sampled as (N*M, D, P, Lq), queries last, so that the weighting runs
    along contiguous rows of Lq values, and the levels are mixed by one multiply-add per
    (level, point) into a single (N*M, D, Lq) output: the (N*M, D, Lq, L*P) stack of
    all levels that the reference implementation builds is never materialized (nor its
    gradient).
    """
    n, c, s = value.shape
    m = num_heads
    d = c // m
    _, lq, _, num_levels, p, _ = grids.shape
    # (N, M*D, S) -> (N*M, D, S), split into levels along the last dim (one split: its
    # gradient is one concatenation, not a zero-filled full-size buffer per level)
    values = value.reshape(n * m, d, s).split([h * w for h, w in spatial_shapes], dim=-1)
    weights = attention_weights.reshape(n * m, num_levels, p, lq)
    # (N, Lq, M, L, P, 2) -> L tensors (N*M, P, Lq, 2), one copy; unbind, not indexing: the
    # gradient of an indexed level would be a zero-filled buffer of all levels
    grids = grids.permute(0, 2, 3, 4, 1, 5).reshape(n * m, num_levels, p, lq, 2).unbind(1)
    sampled = [
        F.grid_sample(values[level].view(n * m, d, h, w), grids[level], mode="bilinear", padding_mode="zeros",
                      align_corners=False)
        for level, (h, w) in enumerate(spatial_shapes)
    ]
    # L times (N*M, D, P, Lq) weighted by (N*M, L, P, Lq), summed over levels and points -> (N*M, D, Lq)
    return _weighted_point_sum(sampled, weights).view(n, c, lq)


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
            # in place: the projection's output is not needed for its backward, so no copy is made
            value = value.masked_fill_(padding_mask[..., None], 0.0)
        value = value.view(n, value.shape[1], m, self.hidden_dim // m)
        offsets = self.sampling_offsets(query).view(n, lq, m, num_levels, p, 2)
        weights = self.attention_weights(query).view(n, lq, m, num_levels * p)
        with torch.autocast(device_type=query.device.type, enabled=False):
            weights = weights.float().softmax(-1)
            grids = self._sampling_grids(reference_points.float(), offsets.float(), spatial_shapes)
            out = ms_deform_attn_sample_grids(value.float(), spatial_shapes, grids, weights)
        return self.output_proj(out.to(query.dtype))

    def _sampling_grids(self, ref: Tensor, offsets: Tensor, spatial_shapes: list[tuple[int, int]]) -> Tensor:
        """Sampling locations in grid_sample's [-1, 1] convention, in one fused multiply-add.

        ref:     (N, Lq, L, 2) points (x, y) or (N, Lq, L, 4) boxes (cx, cy, w, h), normalized
        offsets: (N, Lq, M, L, P, 2) raw offsets (pixels of each level for points,
                 fractions of the box's half size per point for boxes)
        returns: (N, Lq, M, L, P, 2) = 2 * location - 1

        Both terms are expanded to (L, P, 2) before the multiply-add so the broadcast is
        over whole contiguous rows of L * P * 2 values (a broadcast over the last size-2
        dimension alone is several times slower on the CPU).
        """
        n, lq, m, num_levels, p, _ = offsets.shape
        if ref.shape[-1] == 2:
            # 2 * (ref + offset / (W, H)) - 1
            wh = torch.tensor([[w, h] for h, w in spatial_shapes], dtype=torch.float32, device=ref.device)
            scale = (2.0 / wh)[:, None, :].expand(num_levels, p, 2).reshape(1, 1, 1, -1)
            base = 2.0 * ref - 1.0
        elif ref.shape[-1] == 4:
            # 2 * (ref_xy + offset / P * ref_wh * 0.5) - 1
            scale = (ref[..., 2:] / p)[:, :, None, :, None, :].expand(n, lq, 1, num_levels, p, 2).reshape(n, lq, 1, -1)
            base = 2.0 * ref[..., :2] - 1.0
        else:
            raise ValueError(f"reference_points must end in 2 or 4 values, got {tuple(ref.shape)}")
        base = base[:, :, None, :, None, :].expand(n, lq, 1, num_levels, p, 2).reshape(n, lq, 1, -1)
        grids = torch.addcmul(base, offsets.reshape(n, lq, m, -1), scale)
        return grids.view(n, lq, m, num_levels, p, 2)
