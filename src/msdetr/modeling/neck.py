"""Input projections: backbone levels to hidden_dim, plus extra stride-2 levels."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from msdetr.modeling.norm import GroupNorm


class InputProjection(nn.Module):
    """1x1 conv + GroupNorm per backbone level; 3x3 stride-2 conv + GroupNorm per extra level.

    The first extra level reads the last backbone map, later ones the previous extra level.
    """

    def __init__(self, in_channels: tuple[int, ...], hidden_dim: int, num_levels: int, num_groups: int = 32):
        super().__init__()
        if num_levels < len(in_channels):
            in_channels = in_channels[-num_levels:]
        self.num_backbone_levels = len(in_channels)
        projections = [
            nn.Sequential(nn.Conv2d(c, hidden_dim, kernel_size=1), GroupNorm(num_groups, hidden_dim))
            for c in in_channels
        ]
        prev = in_channels[-1]
        for _ in range(num_levels - len(in_channels)):
            projections.append(
                nn.Sequential(
                    nn.Conv2d(prev, hidden_dim, kernel_size=3, stride=2, padding=1),
                    GroupNorm(num_groups, hidden_dim),
                )
            )
            prev = hidden_dim
        self.projections = nn.ModuleList(projections)
        for proj in self.projections:
            nn.init.xavier_uniform_(proj[0].weight, gain=1)
            nn.init.zeros_(proj[0].bias)

    def forward(self, features: list[tuple[Tensor, Tensor]], pixel_mask: Tensor) -> list[tuple[Tensor, Tensor]]:
        """
        features:   backbone levels (B, C_l, H_l, W_l) with masks (B, H_l, W_l)
        pixel_mask: (B, H, W) bool, True on padding (for the extra levels' masks)
        returns:    num_levels maps (B, hidden_dim, H_l, W_l) with masks (B, H_l, W_l)
        """
        features = features[-self.num_backbone_levels :]
        out = [(proj(feat), mask) for proj, (feat, mask) in zip(self.projections, features)]
        src = features[-1][0]
        for proj in self.projections[self.num_backbone_levels :]:
            src = proj(src)
            mask = F.interpolate(pixel_mask[None].float(), size=src.shape[-2:]).to(torch.bool)[0]
            out.append((src, mask))
        return out
