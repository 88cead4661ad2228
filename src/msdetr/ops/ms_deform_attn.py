"""Multi-scale deformable attention (Deformable DETR), pure PyTorch.

The sampling runs through `torch.nn.functional.grid_sample`, so it works on any
device (CPU, CUDA, MPS) and exports to ONNX; no compiled extension is needed. On CUDA,
when Triton is importable (it ships with torch's CUDA builds), Triton kernels run it
instead (`ms_deform_attn_triton`, one launch forward and one backward; `set_backend`).
The sampling and weighting run in float32 even under autocast.

The computation is the reference one (bilinear samples of every level, weighted
by the attention weights and summed), arranged for memory traffic: samples are
laid out queries-last, levels are never stacked, the weighted sum is one
multiply-add per (level, point), and all of it runs a cache-sized chunk of
(batch x head) maps at a time, forward and (hand-written) backward. Under
tracing/export it is plain operators.

Shapes: N batch, Lq queries, S = sum(H_l * W_l) value tokens over L levels,
M heads, P points per head and level, D = hidden_dim / M.
"""

from __future__ import annotations

import functools
import importlib.util
import math
import os

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _chunk_size(num_maps: int, channels: int, num_points: int, num_queries: int) -> int:
    """Value maps (batch x heads) per chunk so that one level's samples of a chunk,
    (chunk, D, P, Lq) float32, stay around 1 MiB: small enough to be consumed from the
    CPU cache right after `grid_sample` writes them."""
    return max(1, min(num_maps, (1 << 18) // max(1, channels * num_points * num_queries)))


def _sample_and_weight(maps: list[Tensor], grids: list[Tensor], weights: Tensor, chunk: int,
                       keep: list | None = None) -> Tensor:
    """Sample every level and mix, `chunk` maps at a time; no autograd.

    maps: L tensors (B, D, H_l, W_l); grids: L tensors (B, P, Lq, 2) in [-1, 1];
    weights: (B, L, P, Lq); returns (B, D, Lq). Each chunk's samples of a level,
    (chunk, D, P, Lq), are weighted into the chunk's output while still in cache.
    `keep`, when given, receives the samples of every (chunk, level) for a backward.
    """
    b, d = maps[0].shape[:2]
    p, lq = grids[0].shape[1:3]
    out = maps[0].new_empty(b, d, lq)
    for start in range(0, b, chunk):
        end = min(start + chunk, b)
        out_chunk = out[start:end]
        for level, (value_map, grid) in enumerate(zip(maps, grids)):
            sampled = F.grid_sample(value_map[start:end], grid[start:end], mode="bilinear", padding_mode="zeros",
                                    align_corners=False)
            if keep is not None:
                keep.append(sampled)
            for point in range(p):
                w = weights[start:end, level, point].unsqueeze(1)  # (chunk, 1, Lq)
                if level == 0 and point == 0:
                    torch.mul(sampled[:, :, point], w, out=out_chunk)
                else:
                    out_chunk.addcmul_(sampled[:, :, point], w)
    return out


class _SampleAndWeight(torch.autograd.Function):
    """`_sample_and_weight` with a backward that also runs chunk by chunk: the gradient
    of a chunk's samples is made, handed to grid_sample's backward and dropped while in cache.

    The samples are saved with `save_for_backward` (with the inputs): autograd frees them with the
    graph (after a backward, unless `retain_graph=True`, which may then backpropagate again)."""

    @staticmethod
    def forward(ctx, chunk: int, weights: Tensor, *levels: Tensor) -> Tensor:
        """weights: (B, L, P, Lq); levels: L maps (B, D, H_l, W_l), then L grids (B, P, Lq, 2)."""
        num_levels = len(levels) // 2
        maps, grids = list(levels[:num_levels]), list(levels[num_levels:])
        ctx.chunk = chunk
        ctx.num_inputs = 1 + len(levels)
        sampled = []  # intermediates (chunk, D, P, Lq), (chunk, level) order
        out = _sample_and_weight(maps, grids, weights, chunk, keep=sampled)
        ctx.save_for_backward(weights, *levels, *sampled)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, ...]:
        """grad: (B, D, Lq) -> None (chunk), grads of weights, of each map and of each grid."""
        saved = ctx.saved_tensors
        weights, *levels = saved[: ctx.num_inputs]
        num_levels = len(levels) // 2
        maps, grids = levels[:num_levels], levels[num_levels:]
        grad = grad.contiguous()  # often a transposed view: the loops below want rows of Lq
        grad_weights = torch.empty_like(weights)
        grad_maps = [torch.empty_like(m) for m in maps]
        grad_grids = [torch.empty_like(g) for g in grids]
        sampled = iter(saved[ctx.num_inputs :])
        b = weights.shape[0]
        for start in range(0, b, ctx.chunk):
            end = min(start + ctx.chunk, b)
            grad_chunk = grad[start:end]
            for level in range(num_levels):
                level_sampled = next(sampled)
                grad_sampled = grad_chunk.unsqueeze(2) * weights[start:end, level].unsqueeze(1)
                grad_map, grad_grid = torch.ops.aten.grid_sampler_2d_backward(
                    grad_sampled, maps[level][start:end], grids[level][start:end], 0, 0, False, [True, True])
                grad_maps[level][start:end] = grad_map
                grad_grids[level][start:end] = grad_grid
                # sum over D of grad * sampled, one multiply-add per channel
                out = grad_weights[start:end, level]
                torch.mul(level_sampled[:, 0], grad_chunk[:, 0, None], out=out)
                for c in range(1, level_sampled.shape[1]):
                    out.addcmul_(level_sampled[:, c], grad_chunk[:, c, None])
        return (None, grad_weights, *grad_maps, *grad_grids)


_BACKENDS = ("auto", "triton", "grid_sample")
_backend = os.environ.get("MSDETR_MSDA_BACKEND", "auto")


def set_backend(name: str) -> None:
    """Which implementation runs the sampling: "auto" (the Triton kernels on CUDA when Triton
    is importable, else grid_sample), "triton" (also elsewhere, e.g. under TRITON_INTERPRET=1),
    or "grid_sample". Also settable with the MSDETR_MSDA_BACKEND environment variable."""
    global _backend
    if name not in _BACKENDS:
        raise ValueError(f"deformable attention backend must be one of {_BACKENDS}, got {name!r}")
    _backend = name


@functools.cache
def _triton_installed() -> bool:
    return importlib.util.find_spec("triton") is not None


def _use_triton(value: Tensor) -> bool:
    if _backend == "grid_sample" or (_backend == "auto" and value.device.type != "cuda"):
        return False
    if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export() or torch.compiler.is_compiling():
        return False  # exporters and the compiler get plain operators
    return _triton_installed()


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
    if _use_triton(value):
        from msdetr.ops.ms_deform_attn_triton import ms_deform_attn_triton  # imports triton: only when used

        return ms_deform_attn_triton(value, spatial_shapes, grids, attention_weights)
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
    gradient). On the CPU this runs a few (batch x head) maps at a time (`_chunk_size`),
    so that each chunk's samples are weighted while still in cache.
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
    maps = [values[level].view(n * m, d, h, w) for level, (h, w) in enumerate(spatial_shapes)]
    exporting = torch.jit.is_tracing() or torch.onnx.is_in_onnx_export() or torch.compiler.is_compiling()
    if exporting or value.device.type != "cpu":
        # plain operators, for the exporters and for accelerators (where the chunked
        # CPU path below would only multiply kernel launches): sample, weight, sum
        sampled = [F.grid_sample(v, g, mode="bilinear", padding_mode="zeros", align_corners=False)
                   for v, g in zip(maps, grids)]
        out = (sampled[0] * weights[:, 0].unsqueeze(1)).sum(2)
        for level in range(1, num_levels):
            out = out + (sampled[level] * weights[:, level].unsqueeze(1)).sum(2)
        return out.view(n, c, lq)
    chunk = _chunk_size(n * m, d, p, lq)
    # L levels of (N*M, D, P, Lq) samples weighted by (N*M, L, P, Lq), summed over levels
    # and points -> (N*M, D, Lq)
    if torch.is_grad_enabled() and any(t.requires_grad for t in (weights, *maps, *grids)):
        return _SampleAndWeight.apply(chunk, weights, *maps, *grids).view(n, c, lq)
    return _sample_and_weight(maps, grids, weights, chunk).view(n, c, lq)


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
