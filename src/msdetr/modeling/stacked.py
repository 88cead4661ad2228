"""Per-layer modules applied to all decoder layers at once.

The prediction heads (and MS-DETR's auxiliary FFNs) exist once per decoder layer. Applied
layer by layer they cost L calls of every operator; here the layers' features are stacked on
dim 0 and go through one batched call: shared modules (the same object for every layer) run
once on the stack, distinct ones through their weights stacked to (L, out, in) and one
`baddbmm`. The modules and their parameter names are untouched (checkpoints load as
before); the results equal the per-layer calls up to float rounding of the batched matrix
product (~1e-7 relative).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _shared(modules: Sequence[nn.Module]) -> bool:
    return all(m is modules[0] for m in modules)


def stacked_linear(linears: Sequence[nn.Linear], x: Tensor) -> Tensor:
    """x: (L, ..., in) -> (L, ..., out), slice l through linears[l]."""
    if _shared(linears):
        return linears[0](x)
    weight = torch.stack([m.weight for m in linears])  # (L, out, in)
    flat = x.reshape(x.shape[0], -1, x.shape[-1])  # (L, N, in)
    if linears[0].bias is None:
        out = torch.bmm(flat, weight.transpose(1, 2))
    else:
        bias = torch.stack([m.bias for m in linears])  # (L, out)
        out = torch.baddbmm(bias.unsqueeze(1), flat, weight.transpose(1, 2))
    return out.view(*x.shape[:-1], out.shape[-1])


def stacked_mlp(mlps: Sequence[nn.Module], x: Tensor) -> Tensor:
    """`MLP`s (linear layers with ReLU between them), one per slice of x: (L, ..., in) -> (L, ..., out)."""
    if _shared(mlps):
        return mlps[0](x)
    depth = len(mlps[0].layers)
    for i in range(depth):
        x = stacked_linear([mlp.layers[i] for mlp in mlps], x)
        if i < depth - 1:
            x = F.relu(x)
    return x


def stacked_layer_norm(norms: Sequence[nn.LayerNorm], x: Tensor) -> Tensor:
    """LayerNorms over the last dim, one per slice of x: (L, ..., D) -> (L, ..., D)."""
    if _shared(norms):
        return norms[0](x)
    first = norms[0]
    out = F.layer_norm(x, first.normalized_shape, None, None, first.eps)
    view = (x.shape[0],) + (1,) * (x.dim() - 2) + (x.shape[-1],)
    weight = torch.stack([m.weight for m in norms]).view(view)
    bias = torch.stack([m.bias for m in norms]).view(view)
    return torch.addcmul(bias, out, weight)
