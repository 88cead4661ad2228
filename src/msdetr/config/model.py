"""Typed configuration of the detector (architecture only, no training settings)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

# Where the one-to-many stream is tapped inside a decoder layer (paper Fig. 4):
#   a: SA -> CA -> FFN, tap after the FFN (both streams are the same tensor)
#   b: CA -> SA -> FFN, tap after the FFN (both streams are the same tensor)
#   c: CA -> [tap] -> SA -> FFN (MS-DETR's choice)
#   d: SA -> [tap] -> CA -> FFN, tap after self-attention
TapPlacement = Literal["a", "b", "c", "d"]


@dataclass
class BackboneConfig:
    """ResNet backbone from torchvision.

    name: resnet18 | resnet34 | resnet50 | resnet101.
    weights: None (random init), "imagenet" (torchvision's weights enum, needs the
    file in torch's cache or a download) or a path to a local state dict file.
    return_stride4: also return the stride-4 map (layer1) as the first level.
    freeze_at: stem+layer1 are frozen by default ("layer1"); "none" trains all,
    "all" freezes the whole backbone.
    norm: "frozen_bn" (default; Deformable DETR, for pretrained weights), "batch_norm"
    (trainable BatchNorm, per process, for training from scratch) or "group_norm"
    (32 groups, trainable, independent of the batch).
    """

    name: str = "resnet50"
    weights: str | None = None
    return_stride4: bool = False
    freeze_at: Literal["none", "stem", "layer1", "all"] = "layer1"
    dilation: bool = False
    norm: Literal["frozen_bn", "batch_norm", "group_norm"] = "frozen_bn"


@dataclass
class MixedSupervisionConfig:
    """MS-DETR one-to-many stream inside the primary decoder.

    enabled: produce a `one_to_many` stream (no extra queries, nothing at inference).
    tap: placement of the tap, see `TapPlacement` (paper Fig. 4, MS-DETR uses "c").
    aux_ffn: an auxiliary FFN (linear3/linear4/norm4) on the tapped features.
    share_class_head / share_box_head: heads shared with the one-to-one stream
    (paper Table 6; MS-DETR shares both). When not shared, the stream gets its own heads.
    """

    enabled: bool = False
    tap: TapPlacement = "c"
    aux_ffn: bool = True
    share_class_head: bool = True
    share_box_head: bool = True


@dataclass
class MaskHeadConfig:
    """Instance masks (Mask-Deformable-DETR): per-query mask embeddings from every decoder layer,
    dotted with a per-pixel embedding map of the highest-resolution encoder level (stride 8, or 4
    with `backbone.return_stride4`). See `msdetr.modeling.mask_head`.

    enabled: add the mask head (the targets then carry masks and the criterion mask losses).
    mask_dim: size of the query and pixel embeddings.
    """

    enabled: bool = False
    mask_dim: int = 256


@dataclass
class ModelConfig:
    """Deformable-DETR family detector.

    two_stage: queries from the top-k encoder proposals (Deformable DETR two-stage).
    with_box_refine: iterative box refinement, one head per decoder layer.
    mixed_selection: with two_stage, content queries are learned and positional
    queries come from proposals (Deformable-DETR++ / DINO).
    look_forward_twice: layer i's box prediction uses layer i-1's undetached
    refined box (DINO), changing gradients only.
    padding_invariant: an image gives the same outputs alone and inside a padded
    batch: backbone and input projections run on each image's unpadded area, and
    two-stage proposals never come from padded or invalid locations. The official
    code does neither (its outputs depend on the batch's padding); checkpoints
    converted from it set this to false so they reproduce the official outputs.
    """

    num_classes: int = 91
    hidden_dim: int = 256
    nheads: int = 8
    enc_layers: int = 6
    dec_layers: int = 6
    dim_feedforward: int = 1024
    dropout: float = 0.1
    activation: Literal["relu", "gelu"] = "relu"
    num_queries: int = 300
    num_feature_levels: int = 4
    enc_n_points: int = 4
    dec_n_points: int = 4
    with_box_refine: bool = True
    two_stage: bool = True
    mixed_selection: bool = False
    look_forward_twice: bool = False
    position_temperature: float = 10000.0
    padding_invariant: bool = True
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    mixed_supervision: MixedSupervisionConfig = field(default_factory=MixedSupervisionConfig)
    mask_head: MaskHeadConfig = field(default_factory=MaskHeadConfig)
