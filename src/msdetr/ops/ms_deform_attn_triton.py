"""Multi-scale deformable attention as Triton kernels (forward and backward), for CUDA.

The same computation as `ms_deform_attn.ms_deform_attn_sample_grids` (bilinear samples of
every level, zero outside the map, `align_corners=False`, weighted by the attention weights
and summed), in one kernel launch forward and one backward, instead of a `grid_sample` and
its backward per level plus the weighting operators.

Kernel layout: one program per (block of queries, batch x head); it walks the L levels and
P points, and for each point gathers the four corner rows of D channels of `value`. The
backward recomputes the corner samples; it scatters the value gradient with atomic adds,
and writes the gradients of the sampling grids and attention weights directly (each
(query, head, level, point) belongs to one program). All arithmetic in float32.

`TRITON_INTERPRET=1` runs the kernels on CPU tensors with Triton's interpreter (the tests
do so); the detector uses them only on CUDA (`available_for`).

Shapes: N batch, Lq queries, S = sum(H_l * W_l) value tokens, M heads, D channels per
head, L levels, P points.
"""

from __future__ import annotations

import os

import torch
from torch import Tensor

try:  # Triton ships with torch's CUDA builds; without it the grid_sample path runs
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - depends on the installation
    triton = None
    tl = None


def is_available() -> bool:
    """Whether Triton can be imported."""
    return triton is not None


def available_for(value: Tensor) -> bool:
    """Whether the kernels can run on `value`'s device (CUDA, or any device under the interpreter)."""
    if triton is None:
        return False
    return value.device.type == "cuda" or os.environ.get("TRITON_INTERPRET") == "1"


if triton is not None:

    @triton.jit
    def _corner(value_ptr, value_base, start, xi, yi, width, height, q_mask, d_offsets, d_mask,
                value_row_stride):
        """(BLOCK_Q, BLOCK_D) value rows at integer pixel (xi, yi) of a level; 0 outside the map."""
        valid = q_mask & (xi >= 0) & (xi < width) & (yi >= 0) & (yi < height)
        token = (start + yi * width + xi).to(tl.int64)
        offsets = value_base + token[:, None] * value_row_stride + d_offsets[None, :]
        return tl.load(value_ptr + offsets, mask=valid[:, None] & d_mask[None, :], other=0.0), valid, offsets

    @triton.jit
    def _program_rows(num_tokens, num_queries, num_heads, channels,
                      BLOCK_Q: tl.constexpr, BLOCK_D: tl.constexpr):
        """This program's queries and channels: (BLOCK_Q,) query mask, (BLOCK_D,) channel offsets and
        mask, (BLOCK_Q,) row index into (N, Lq, M), the value row stride and this (batch, head)'s
        value base offset."""
        block = tl.program_id(0)
        batch_head = tl.program_id(1)
        n = batch_head // num_heads
        m = batch_head % num_heads
        q = block * BLOCK_Q + tl.arange(0, BLOCK_Q)
        d = tl.arange(0, BLOCK_D)
        q_mask = q < num_queries
        d_mask = d < channels
        row = (n * num_queries + q).to(tl.int64) * num_heads + m  # (N, Lq, M) row index
        value_row_stride = num_heads * channels  # value: (N, S, M, D) contiguous
        value_base = n.to(tl.int64) * num_tokens * value_row_stride + m * channels
        return q_mask, d, d_mask, row, value_row_stride, value_base

    @triton.jit
    def _sample_point(value_ptr, value_base, value_row_stride, shapes_ptr, starts_ptr, grid_ptr, attn_ptr, row,
                      index: tl.constexpr, q_mask, d, d_mask, LEVELS: tl.constexpr, POINTS: tl.constexpr):
        """Point index % POINTS of level index // POINTS for BLOCK_Q queries: its (BLOCK_Q,) sample index, the level's
        width and height, the attention weight, the bilinear fractions lx, ly and 1 - lx, 1 - ly, and
        the four corners (x0, y0), (x0 + 1, y0), (x0, y0 + 1), (x0 + 1, y0 + 1), each as
        (values (BLOCK_Q, BLOCK_D), valid, offsets)."""
        level = index // POINTS
        height = tl.load(shapes_ptr + 2 * level)
        width = tl.load(shapes_ptr + 2 * level + 1)
        start = tl.load(starts_ptr + level)
        sample = row * (LEVELS * POINTS) + index
        attn = tl.load(attn_ptr + sample, mask=q_mask, other=0.0)
        gx = tl.load(grid_ptr + 2 * sample, mask=q_mask, other=0.0)
        gy = tl.load(grid_ptr + 2 * sample + 1, mask=q_mask, other=0.0)
        x = ((gx + 1.0) * width - 1.0) * 0.5  # grid_sample's unnormalization, align_corners=False
        y = ((gy + 1.0) * height - 1.0) * 0.5
        x0f = tl.floor(x)
        y0f = tl.floor(y)
        lx = x - x0f
        ly = y - y0f
        x0 = x0f.to(tl.int32)
        y0 = y0f.to(tl.int32)
        v00, m00, o00 = _corner(value_ptr, value_base, start, x0, y0, width, height, q_mask, d, d_mask,
                                value_row_stride)
        v01, m01, o01 = _corner(value_ptr, value_base, start, x0 + 1, y0, width, height, q_mask, d, d_mask,
                                value_row_stride)
        v10, m10, o10 = _corner(value_ptr, value_base, start, x0, y0 + 1, width, height, q_mask, d, d_mask,
                                value_row_stride)
        v11, m11, o11 = _corner(value_ptr, value_base, start, x0 + 1, y0 + 1, width, height, q_mask, d, d_mask,
                                value_row_stride)
        return (sample, width, height, attn, lx, ly, 1.0 - lx, 1.0 - ly,
                v00, m00, o00, v01, m01, o01, v10, m10, o10, v11, m11, o11)

    @triton.jit
    def _forward_kernel(value_ptr, shapes_ptr, starts_ptr, grid_ptr, attn_ptr, out_ptr,
                        num_tokens, num_queries, num_heads, channels,
                        LEVELS: tl.constexpr, POINTS: tl.constexpr, BLOCK_Q: tl.constexpr, BLOCK_D: tl.constexpr):
        q_mask, d, d_mask, row, value_row_stride, value_base = _program_rows(
            num_tokens, num_queries, num_heads, channels, BLOCK_Q, BLOCK_D)
        acc = tl.zeros((BLOCK_Q, BLOCK_D), dtype=tl.float32)
        for index in tl.static_range(LEVELS * POINTS):  # level index // POINTS, point index % POINTS
            (sample, width, height, attn, lx, ly, hx, hy,
             v00, _, _, v01, _, _, v10, _, _, v11, _, _) = _sample_point(
                value_ptr, value_base, value_row_stride, shapes_ptr, starts_ptr, grid_ptr, attn_ptr, row,
                index, q_mask, d, d_mask, LEVELS, POINTS)
            sampled = ((hy * hx)[:, None] * v00 + (hy * lx)[:, None] * v01
                       + (ly * hx)[:, None] * v10 + (ly * lx)[:, None] * v11)
            acc += attn[:, None] * sampled
        out_offsets = row[:, None] * channels + d[None, :]  # out: (N, Lq, M, D)
        tl.store(out_ptr + out_offsets, acc, mask=q_mask[:, None] & d_mask[None, :])

    @triton.jit
    def _backward_kernel(value_ptr, shapes_ptr, starts_ptr, grid_ptr, attn_ptr, grad_out_ptr,
                         grad_value_ptr, grad_grid_ptr, grad_attn_ptr,
                         num_tokens, num_queries, num_heads, channels,
                         LEVELS: tl.constexpr, POINTS: tl.constexpr, BLOCK_Q: tl.constexpr, BLOCK_D: tl.constexpr):
        q_mask, d, d_mask, row, value_row_stride, value_base = _program_rows(
            num_tokens, num_queries, num_heads, channels, BLOCK_Q, BLOCK_D)
        grad = tl.load(grad_out_ptr + row[:, None] * channels + d[None, :],
                       mask=q_mask[:, None] & d_mask[None, :], other=0.0)  # (BLOCK_Q, BLOCK_D)
        for index in tl.static_range(LEVELS * POINTS):  # level index // POINTS, point index % POINTS
            (sample, width, height, attn, lx, ly, hx, hy,
             v00, m00, o00, v01, m01, o01, v10, m10, o10, v11, m11, o11) = _sample_point(
                value_ptr, value_base, value_row_stride, shapes_ptr, starts_ptr, grid_ptr, attn_ptr, row,
                index, q_mask, d, d_mask, LEVELS, POINTS)
            # gradient of the values: each corner gets grad * attention * its bilinear weight
            weighted = attn[:, None] * grad
            tl.atomic_add(grad_value_ptr + o00, (hy * hx)[:, None] * weighted, mask=m00[:, None] & d_mask[None, :])
            tl.atomic_add(grad_value_ptr + o01, (hy * lx)[:, None] * weighted, mask=m01[:, None] & d_mask[None, :])
            tl.atomic_add(grad_value_ptr + o10, (ly * hx)[:, None] * weighted, mask=m10[:, None] & d_mask[None, :])
            tl.atomic_add(grad_value_ptr + o11, (ly * lx)[:, None] * weighted, mask=m11[:, None] & d_mask[None, :])
            # grad . corner rows: the attention weight's gradient and the location's
            s00 = tl.sum(grad * v00, axis=1)
            s01 = tl.sum(grad * v01, axis=1)
            s10 = tl.sum(grad * v10, axis=1)
            s11 = tl.sum(grad * v11, axis=1)
            grad_attn = hy * hx * s00 + hy * lx * s01 + ly * hx * s10 + ly * lx * s11
            grad_lx = attn * (hy * (s01 - s00) + ly * (s11 - s10))
            grad_ly = attn * (hx * (s10 - s00) + lx * (s11 - s01))
            tl.store(grad_attn_ptr + sample, grad_attn, mask=q_mask)
            tl.store(grad_grid_ptr + 2 * sample, grad_lx * width * 0.5, mask=q_mask)
            tl.store(grad_grid_ptr + 2 * sample + 1, grad_ly * height * 0.5, mask=q_mask)


_BLOCK_Q = 32


def _launch_config(num_queries: int, num_maps: int, channels: int) -> tuple[tuple[int, int], int]:
    grid = (triton.cdiv(num_queries, _BLOCK_Q), num_maps)
    return grid, triton.next_power_of_2(max(channels, 1))


def _level_tables(spatial_shapes: list[tuple[int, int]], device: torch.device) -> tuple[Tensor, Tensor]:
    """(L, 2) int32 (H, W) per level and (L,) int32 start token of each level, on `device`."""
    shapes = torch.tensor(spatial_shapes, dtype=torch.int32).reshape(-1, 2)
    starts = torch.zeros(len(spatial_shapes), dtype=torch.int32)
    if len(spatial_shapes) > 1:
        starts[1:] = (shapes[:, 0] * shapes[:, 1]).cumsum(0)[:-1]
    return shapes.to(device), starts.to(device)


class _TritonSample(torch.autograd.Function):
    @staticmethod
    def forward(ctx, value: Tensor, grids: Tensor, weights: Tensor, shapes: Tensor, starts: Tensor) -> Tensor:
        n, s, m, d = value.shape
        _, lq, _, num_levels, p, _ = grids.shape
        out = torch.empty(n, lq, m, d, dtype=torch.float32, device=value.device)
        launch, block_d = _launch_config(lq, n * m, d)
        _forward_kernel[launch](value, shapes, starts, grids, weights, out, s, lq, m, d,
                                LEVELS=num_levels, POINTS=p, BLOCK_Q=_BLOCK_Q, BLOCK_D=block_d)
        ctx.save_for_backward(value, grids, weights, shapes, starts)
        return out.view(n, lq, m * d)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor):
        value, grids, weights, shapes, starts = ctx.saved_tensors
        n, s, m, d = value.shape
        _, lq, _, num_levels, p, _ = grids.shape
        grad = grad.float().contiguous()
        grad_value = torch.zeros_like(value)
        grad_grids = torch.empty_like(grids)
        grad_weights = torch.empty_like(weights)
        launch, block_d = _launch_config(lq, n * m, d)
        _backward_kernel[launch](value, shapes, starts, grids, weights, grad, grad_value, grad_grids, grad_weights,
                                 s, lq, m, d, LEVELS=num_levels, POINTS=p, BLOCK_Q=_BLOCK_Q, BLOCK_D=block_d)
        return grad_value, grad_grids, grad_weights, None, None


def ms_deform_attn_triton(
    value: Tensor, spatial_shapes: list[tuple[int, int]], grids: Tensor, attention_weights: Tensor
) -> Tensor:
    """`ms_deform_attn_sample_grids` with the Triton kernels.

    value:             (N, S, M, D)
    spatial_shapes:    L pairs (H_l, W_l), sum of H_l * W_l == S
    grids:             (N, Lq, M, L, P, 2) as (x, y) in [-1, 1] (grid_sample's convention)
    attention_weights: (N, Lq, M, L, P) or (N, Lq, M, L * P)
    returns:           (N, Lq, M * D) float32
    """
    if triton is None:
        raise RuntimeError("ms_deform_attn_triton needs Triton (pip install triton)")
    n, lq, m, num_levels, p, _ = grids.shape
    shapes, starts = _level_tables(spatial_shapes, value.device)
    return _TritonSample.apply(
        value.float().contiguous(),
        grids.float().contiguous(),
        attention_weights.float().reshape(n, lq, m, num_levels, p).contiguous(),
        shapes,
        starts,
    )
