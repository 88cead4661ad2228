"""The release's inference-time fusion of each decoder layer's class scores with the previous layer's.

`p_0 = clamp(sigmoid(x_0))`, `p_l = clamp(sqrt((sigmoid(x_l)^2.001 + p_{l-1}^1.853) / 2))` for l >= 1,
returned as logits `inverse_sigmoid(p_l)` with detrex's eps (1e-3), so p is clamped to
[1e-3, 1 - 1e-3] at every layer as in the release ("can improve AP by about 0.1 ~ 0.2%").
"""

from __future__ import annotations

import torch
from torch import Tensor

from msdetr.modeling.decoder import inverse_sigmoid


def fuse_layer_scores(logits: Tensor, eps: float = 1e-3) -> Tensor:
    """(L, B, Q, C) logits -> (L, B, Q, C) fused logits (layer by layer, L is small)."""
    fused = []
    for layer_logits in logits:
        p = layer_logits.sigmoid()
        if fused:
            p = torch.sqrt((p**2.001 + fused[-1].sigmoid() ** 1.853) / 2.0)
        fused.append(inverse_sigmoid(p, eps))
    return torch.stack(fused)
