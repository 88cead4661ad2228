"""Gradients of deformable attention's CPU path (the chunked `_SampleAndWeight`): gradcheck in
float64, and a graph kept with `retain_graph=True` backpropagates again (autograd.grad of one loss,
then backward of another), giving the gradients of plain grid_sample operators."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from msdetr.ops import ms_deform_attn
from msdetr.ops.ms_deform_attn import ms_deform_attn_sample

SHAPES = [(4, 3), (2, 2)]
N, M, D, LQ, P = 2, 2, 3, 3, 2


def _inputs(seed: int = 0, dtype=torch.float64):
    """value (N, S, M, D), locations (N, LQ, M, L, P, 2), weights (N, LQ, M, L, P), leaf tensors.

    Locations sit off the pixel lattice (bilinear sampling has a kink wherever x * W - 0.5 is an
    integer): at least 0.1 pixel from every such line, some outside the map (they read zeros)."""
    g = torch.Generator().manual_seed(seed)
    value = torch.randn(N, sum(h * w for h, w in SHAPES), M, D, generator=g, dtype=dtype)
    levels = []
    for h, w in SHAPES:
        size = torch.tensor([w, h], dtype=dtype)
        cell = torch.randint(-1, max(h, w) + 1, (N, LQ, M, P, 2), generator=g).to(dtype)
        frac = 0.1 + 0.8 * torch.rand(N, LQ, M, P, 2, generator=g, dtype=dtype)
        levels.append((cell + frac + 0.5) / size)  # x * W - 0.5 = cell + frac
    locations = torch.stack(levels, 3)
    weights = torch.rand(N, LQ, M, len(SHAPES), P, generator=g, dtype=dtype)
    weights = weights / weights.sum((-1, -2), keepdim=True)
    return [t.requires_grad_() for t in (value, locations, weights)]


def _plain(value, shapes, locations, weights):
    """Reference with autograd's own operators: grid_sample per level, weighted sum. (N, LQ, M * D)."""
    n, _, m, d = value.shape
    _, lq, _, num_levels, p, _ = locations.shape
    maps = value.split([h * w for h, w in shapes], dim=1)
    out = 0
    for level, (h, w) in enumerate(shapes):
        vmap = maps[level].permute(0, 2, 3, 1).reshape(n * m, d, h, w)
        grid = (2 * locations[:, :, :, level] - 1).permute(0, 2, 1, 3, 4).reshape(n * m, lq, p, 2)
        sampled = F.grid_sample(vmap, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        wgt = weights[:, :, :, level].permute(0, 2, 1, 3).reshape(n * m, 1, lq, p)
        out = out + (sampled * wgt).sum(-1)  # (N*M, D, LQ)
    return out.view(n, m, d, lq).permute(0, 3, 1, 2).reshape(n, lq, m * d)


@pytest.fixture(params=["one_chunk", "chunk_of_one"])
def chunking(request, monkeypatch):
    """The whole batch x heads in one chunk (the default at these sizes), or one map per chunk."""
    if request.param == "chunk_of_one":
        monkeypatch.setattr(ms_deform_attn, "_chunk_size", lambda *args: 1)
    return request.param


def _graph_nodes(tensor):
    """Names of every autograd node behind `tensor`."""
    names, stack, seen = [], [tensor.grad_fn], set()
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        names.append(type(node).__name__)
        stack.extend(next_node for next_node, _ in node.next_functions)
    return names


def test_cpu_path_is_the_custom_function():
    """The tests below exercise the hand-written backward, not autograd's grid_sample."""
    value, locations, weights = _inputs()
    nodes = _graph_nodes(ms_deform_attn_sample(value, SHAPES, locations, weights))
    assert "_SampleAndWeightBackward" in nodes and "GridSampler2DBackward0" not in nodes


def test_gradcheck_float64(chunking):
    value, locations, weights = _inputs()
    assert torch.autograd.gradcheck(lambda v, loc, w: ms_deform_attn_sample(v, SHAPES, loc, w),
                                    (value, locations, weights), eps=1e-6, atol=1e-7, rtol=1e-5)


def test_matches_plain_operators_forward_and_backward(chunking):
    ours_in, ref_in = _inputs(1), _inputs(1)
    ours = ms_deform_attn_sample(ours_in[0], SHAPES, ours_in[1], ours_in[2])
    ref = _plain(ref_in[0], SHAPES, ref_in[1], ref_in[2])
    torch.testing.assert_close(ours, ref)
    upstream = torch.randn_like(ours)
    ours_grads = torch.autograd.grad(ours, ours_in, upstream)
    ref_grads = torch.autograd.grad(ref, ref_in, upstream)
    for got, expected in zip(ours_grads, ref_grads):
        torch.testing.assert_close(got, expected)


def test_retained_graph_backpropagates_twice(chunking):
    """autograd.grad of one loss with retain_graph=True, then backward of another loss on the same
    graph (both in float32, as the model runs it): both equal the plain operators' gradients."""
    ours_in = _inputs(2, torch.float32)
    ref_in = _inputs(2, torch.float32)
    results = []
    for fn, inputs in ((ms_deform_attn_sample, ours_in), (_plain, ref_in)):
        value, locations, weights = inputs
        out = fn(value, SHAPES, locations, weights)
        first = torch.autograd.grad(out.sum(), (value, weights), retain_graph=True)
        (out ** 2).sum().backward()
        results.append((first, [t.grad for t in inputs]))
    (ours_first, ours_second), (ref_first, ref_second) = results
    for got, expected in zip([*ours_first, *ours_second], [*ref_first, *ref_second]):
        torch.testing.assert_close(got, expected)


def test_graph_is_freed_after_a_plain_backward():
    """Without retain_graph the saved samples go with the graph: a second backward is torch's own
    error, as for any freed graph."""
    value, locations, weights = _inputs(3, torch.float32)
    out = ms_deform_attn_sample(value, SHAPES, locations, weights)
    out.sum().backward()
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        out.sum().backward()
