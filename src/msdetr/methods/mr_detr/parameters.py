"""Mr. DETR's own parameters: per decoder layer the instruction tokens, the instructive route's
self-attention norm and the sep route's FFN linears; the second encoder head pair.

Reference names (docs/mr_detr_reference.md, section 9), per layer `<i>`:
`attentions.0.instruction_o2m` / `instruction_o2m_pos` -> `layers.<i>.instruction` / `instruction_pos`
(T x D), `attentions.0.norm_o2m` -> `layers.<i>.norm`, `ffns.0.layers.0.linear.linear_sep` /
`ffns.0.layers.1.linear_sep` -> `layers.<i>.linear1` / `linear2`; detector:
`transformer.decoder.class_embed_o2m_encoder` / `bbox_embed_enc_o2m` -> `encoder_class_head` /
`encoder_box_head`.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from msdetr.methods.mr_detr.config import MrDetrModelConfig


class RouteLayerParameters(nn.Module):
    """One decoder layer's route parameters (the layer's own modules are shared).

    instruction, instruction_pos: (T, D) instruction tokens and their positions (instructive route).
    norm: the instructive route's self-attention post-norm (the primary's is the layer's `norm2`).
    linear1 (D -> F), linear2 (F -> D): the sep route's FFN weights.
    """

    def __init__(self, hidden_dim: int, dim_feedforward: int, num_instructions: int, instructive: bool, sep: bool):
        super().__init__()
        if instructive:
            self.instruction = nn.Parameter(torch.empty(num_instructions, hidden_dim))
            self.instruction_pos = nn.Parameter(torch.empty(num_instructions, hidden_dim))
            self.norm = nn.LayerNorm(hidden_dim)
        if sep:
            self.linear1 = nn.Linear(hidden_dim, dim_feedforward)
            self.linear2 = nn.Linear(dim_feedforward, hidden_dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """xavier_uniform on every matrix, as the release's transformer init (instruction tokens included)."""
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)


class MrDetrParameters(nn.Module):
    """All of Mr. DETR's parameters (the detector's `mr_detr` module).

    layers: one `RouteLayerParameters` per decoder layer.
    encoder_class_head / encoder_box_head: the instructive route's proposal heads (None without that
        route): copies of the layer-0 heads, the box head's size bias set to `encoder_size_bias`.
    """

    def __init__(self, cfg: MrDetrModelConfig, hidden_dim: int, dim_feedforward: int, num_layers: int,
                 layer0_class_head: nn.Module, layer0_box_head: nn.Module):
        super().__init__()
        self.cfg = cfg
        self.layers = nn.ModuleList(
            RouteLayerParameters(hidden_dim, dim_feedforward, cfg.num_instructions, cfg.instructive_route,
                                 cfg.sep_route)
            for _ in range(num_layers))
        self.encoder_class_head = self.encoder_box_head = None
        if cfg.instructive_route:
            self.encoder_class_head = copy.deepcopy(layer0_class_head)
            self.encoder_box_head = copy.deepcopy(layer0_box_head)
            self.copy_encoder_heads(layer0_class_head, layer0_box_head)

    def copy_encoder_heads(self, layer0_class_head: nn.Module, layer0_box_head: nn.Module) -> None:
        """The second encoder head := the layer-0 heads' values, the box head's size bias set to
        `encoder_size_bias` (nothing without the instructive route)."""
        if self.encoder_class_head is None:
            return
        with torch.no_grad():
            self.encoder_class_head.load_state_dict(layer0_class_head.state_dict())
            self.encoder_box_head.load_state_dict(layer0_box_head.state_dict())
            self.encoder_box_head.layers[-1].bias[2:] = self.cfg.encoder_size_bias
