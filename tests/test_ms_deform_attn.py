"""Deformable attention against a straightforward per-point bilinear reference."""

from __future__ import annotations

import math

import torch

from msdetr.ops.ms_deform_attn import MultiScaleDeformableAttention, ms_deform_attn_sample


def _bilinear_zero_pad(value_map: torch.Tensor, x: float, y: float) -> torch.Tensor:
    """value_map (D, H, W); (x, y) normalized in [0, 1] with pixel centres at (i + 0.5) / size."""
    d, h, w = value_map.shape
    px, py = x * w - 0.5, y * h - 0.5
    x0, y0 = math.floor(px), math.floor(py)
    out = torch.zeros(d, dtype=torch.float64)
    for yy, xx in ((y0, x0), (y0, x0 + 1), (y0 + 1, x0), (y0 + 1, x0 + 1)):
        wgt = (1 - abs(px - xx)) * (1 - abs(py - yy))
        if 0 <= xx < w and 0 <= yy < h:
            out += wgt * value_map[:, yy, xx].double()
    return out


def _reference(value, shapes, locations, weights):
    n, _, m, d = value.shape
    _, lq, _, num_levels, p, _ = locations.shape
    starts = [0]
    for h, w in shapes:
        starts.append(starts[-1] + h * w)
    out = torch.zeros(n, lq, m, d, dtype=torch.float64)
    for b in range(n):
        for q in range(lq):
            for head in range(m):
                for lvl, (h, w) in enumerate(shapes):
                    vmap = value[b, starts[lvl] : starts[lvl + 1], head].T.reshape(d, h, w)
                    for pt in range(p):
                        x, y = locations[b, q, head, lvl, pt].tolist()
                        out[b, q, head] += weights[b, q, head, lvl, pt].double() * _bilinear_zero_pad(vmap, x, y)
    return out.view(n, lq, m * d)


def test_sampling_matches_per_point_bilinear_reference():
    g = torch.Generator().manual_seed(0)
    shapes = [(6, 5), (3, 4), (2, 2)]
    n, m, d, lq, p = 2, 2, 3, 4, 3
    value = torch.randn(n, sum(h * w for h, w in shapes), m, d, generator=g)
    # include points outside [0, 1] (read zeros) and exactly on borders
    locations = torch.rand(n, lq, m, len(shapes), p, 2, generator=g) * 1.4 - 0.2
    locations[0, 0, 0, 0, 0] = torch.tensor([0.0, 1.0])
    weights = torch.rand(n, lq, m, len(shapes), p, generator=g)
    weights = weights / weights.sum((-1, -2), keepdim=True)
    ours = ms_deform_attn_sample(value, shapes, locations, weights)
    ref = _reference(value, shapes, locations, weights)
    torch.testing.assert_close(ours.double(), ref, atol=1e-5, rtol=1e-5)


def test_module_runs_float32_inside_bf16_autocast():
    torch.manual_seed(0)
    attn = MultiScaleDeformableAttention(hidden_dim=32, num_levels=2, num_heads=4, num_points=2)
    with torch.no_grad():
        attn.sampling_offsets.weight.normal_(0, 0.1)
        attn.attention_weights.weight.normal_(0, 0.1)
    shapes = [(8, 8), (4, 4)]
    query = torch.randn(2, 5, 32)
    values = torch.randn(2, 80, 32)
    ref = torch.rand(2, 5, 2, 4) * 0.5 + 0.25
    full = attn(query, ref, values, shapes)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = attn(query, ref, values, shapes)
    assert torch.isfinite(mixed).all()
    torch.testing.assert_close(mixed.float(), full, atol=0.1, rtol=0.05)
    (mixed.float().sum()).backward()
    assert attn.sampling_offsets.weight.grad is not None and torch.isfinite(attn.sampling_offsets.weight.grad).all()
