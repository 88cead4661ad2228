"""Typed configuration of the detector (architecture only, no training settings)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from msdetr.config.unit_sections import ModelSections, WithUnitSections

# Where the one-to-many stream is tapped inside a decoder layer (paper Fig. 4):
#   a: SA -> CA -> FFN, tap after the FFN (both streams are the same tensor)
#   b: CA -> SA -> FFN, tap after the FFN (both streams are the same tensor)
#   c: CA -> [tap] -> SA -> FFN (MS-DETR's choice)
#   d: SA -> [tap] -> CA -> FFN, tap after self-attention
TapPlacement = Literal["a", "b", "c", "d"]

# torchvision ResNets the backbone can build (`msdetr.modeling.backbone`).
BACKBONE_NAMES = ("resnet18", "resnet34", "resnet50", "resnet101")


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
class HybridQueriesConfig:
    """H-DETR hybrid matching: extra queries for the one-to-many branch (training only).

    num_queries: extra queries (H-DETR: 1500 next to 300 primary); 0 disables the branch.
    With two-stage they are the encoder proposals ranked right after the primary top-k
    (one top-(Q + E) selection, as H-DETR); with mixed selection their content queries
    are learned. Single-stage: learned (position, content) pairs. The queries only see
    each other in self-attention; their predictions are the `hybrid` stream.
    """

    num_queries: int = 0


@dataclass
class GroupQueriesConfig:
    """Group DETR: G - 1 extra copies of the primary query set (training only).

    num_groups: G, the primary group included (1 disables; Table 3 of MS-DETR: 6, i.e.
    1500 extra queries next to 300). Each extra group has the primary's size, its own
    learned content queries and, with two-stage, the primary's top-k proposals as
    positional queries and reference boxes. Groups only see themselves in self-attention;
    all extra groups together are the `group` stream.
    """

    num_groups: int = 1


@dataclass
class DenoisingConfig:
    """Denoising query groups while training (DN-DETR, DINO contrastive denoising); nothing at inference.

    method: "none"; "dn" (DN-DETR: `num_groups` groups of noised ground-truth boxes and flipped
        labels, each query reconstructs its object); "cdn" (DINO: every group holds a positive
        copy (small noise, reconstructs the object) and a negative copy (larger noise, predicts
        "no object") of each object; the group count follows `dn_number`).
    num_groups: "dn": the fixed number of groups (DN-DETR `--scalar`, 5).
    dn_number: "cdn": DINO's `dn_number` (100): 2 * dn_number // (2 * most objects in an image)
        groups, so about 2 * dn_number denoising queries (DINO's rule, odd corners included:
        2 * dn_number groups when 1 <= 2 * dn_number < 100, one group for an empty batch).
        0 turns contrastive denoising off (what DINO's `use_dn: False` means; DINO's released code
        then still trains one group, its `dn_number < 1 -> 1` corner); negative values are an error.
    label_noise: "dn": probability of replacing a label by a random class (DN-DETR 0.2);
        "cdn": DINO's `label_noise_ratio` (0.5), a label is replaced with probability half of it.
    box_noise: DN-DETR `box_noise_scale` (0.4: centre moved by up to 0.2 w/h, sides scaled by
        up to +-40%); DINO's (1.0: corners moved by up to half a side, negatives by 1-2 halves).
    label_indicator: DN-DETR's label embedding of hidden_dim - 1 plus an indicator feature (1 on
        denoising queries, 0 on the primary queries, whose learned content is hidden_dim - 1 wide);
        anchor (DAB) queries only. Off: a hidden_dim label embedding (DINO).
    """

    method: Literal["none", "dn", "cdn"] = "none"
    num_groups: int = 5
    dn_number: int = 100
    label_noise: float = 0.2
    box_noise: float = 0.4
    label_indicator: bool = False

    @property
    def enabled(self) -> bool:
        """Denoising queries are made: a method is set (and, for "cdn", dn_number > 0)."""
        return self.method != "none" and not (self.method == "cdn" and self.dn_number <= 0)


@dataclass
class DacConfig:
    """DAC-DETR's divide-and-conquer branch (`msdetr.methods.dac`, `modeling.branches`): while training, the decoder
    layers run once more on the primary queries without self-attention; heads shared, no extra
    parameters, returned as the `dac` stream (supervise it with `supervision.dac`).

    first_layer_self_attention: the branch's first layer keeps its self-attention (released).
    """

    enabled: bool = False
    first_layer_self_attention: bool = True


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
class ModelConfig(WithUnitSections):
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
    anchor_queries: DAB-Deformable-DETR queries (single-stage only): learned content and
    learned 4-d anchor boxes; each decoder layer's positional query is an MLP of the sine
    embedding of the layer's current anchor (scaled by an MLP of the content from layer 1 on).
    denoising: extra denoising query groups while training (DN-DETR / DINO), see `DenoisingConfig`.
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
    anchor_queries: bool = False
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    mixed_supervision: MixedSupervisionConfig = field(default_factory=MixedSupervisionConfig)
    hybrid: HybridQueriesConfig = field(default_factory=HybridQueriesConfig)
    group: GroupQueriesConfig = field(default_factory=GroupQueriesConfig)
    denoising: DenoisingConfig = field(default_factory=DenoisingConfig)
    dac: DacConfig = field(default_factory=DacConfig)
    mask_head: MaskHeadConfig = field(default_factory=MaskHeadConfig)
    # registered method units' own sections (`model.<unit>`, `config.unit_sections`)
    units: ModelSections = field(default_factory=ModelSections, repr=False)
