"""The Deformable-DETR family detector: images in, named prediction streams out.

The detector knows nothing about supervision: it never matches anything. With
mixed supervision it also returns the `one_to_many` stream (while training, or
when asked); inference output is always the final one-to-one layer.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from msdetr.config.model import ModelConfig
from msdetr.methods.contracts import ONE_TO_MANY, ONE_TO_ONE, QueryContext
from msdetr.methods.registry import build_branches, build_query_group_providers
from msdetr.modeling.anchor_queries import AnchorQueries
from msdetr.modeling.backbone import Backbone
from msdetr.modeling.branches import BranchContext, BranchOutput
from msdetr.modeling.decoder import DecoderMemory, DecoderQueries, DeformableDecoder
from msdetr.modeling.decoder_layers import DecoderLayer, MixedSupervisionDecoderLayer
from msdetr.modeling.encoder import DeformableEncoder
from msdetr.modeling.heads import PredictionHeads
from msdetr.modeling.mask_head import MaskHead
from msdetr.modeling.neck import InputProjection
from msdetr.modeling.outputs import DetectorOutput, StreamPredictions
from msdetr.modeling.position import SinePositionEmbedding
from msdetr.modeling.queries import LearnedQueries, QueryInit, TwoStageQueries
from msdetr.modeling.query_groups import assemble_queries
from msdetr.ops.ms_deform_attn import MultiScaleDeformableAttention


class DeformableDETR(nn.Module):
    """Deformable DETR (single-stage, box refinement, two-stage), Deformable-DETR++
    (mixed query selection, look forward twice), optionally with MS-DETR's
    mixed-supervision decoder layers."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.hidden_dim
        self.backbone = Backbone(cfg.backbone)
        self.position = SinePositionEmbedding(d // 2, cfg.position_temperature)
        self.neck = InputProjection(self.backbone.num_channels, d, cfg.num_feature_levels)
        self.encoder = DeformableEncoder(cfg.enc_layers, d, cfg.dim_feedforward, cfg.dropout, cfg.activation,
                                         cfg.num_feature_levels, cfg.nheads, cfg.enc_n_points)
        ms = cfg.mixed_supervision
        layer_args = (d, cfg.dim_feedforward, cfg.dropout, cfg.activation, cfg.num_feature_levels,
                      cfg.nheads, cfg.dec_n_points)
        if ms.enabled:
            layers = [MixedSupervisionDecoderLayer(*layer_args, placement=ms.tap, aux_ffn=ms.aux_ffn)
                      for _ in range(cfg.dec_layers)]
        else:
            layers = [DecoderLayer(*layer_args) for _ in range(cfg.dec_layers)]
        self.decoder = DeformableDecoder(layers, refine=cfg.with_box_refine,
                                         look_forward_twice=cfg.look_forward_twice)
        if cfg.two_stage:
            self.queries = TwoStageQueries(cfg.num_queries, d, cfg.mixed_selection,
                                           rank_valid_only=cfg.padding_invariant)
        elif cfg.anchor_queries:
            content = d - 1 if cfg.denoising.enabled and cfg.denoising.label_indicator else d
            self.queries = AnchorQueries(cfg.num_queries, d, content_dim=content)
        else:
            self.queries = LearnedQueries(cfg.num_queries, d)
        self._init_transformer()
        # the registered methods' extra training queries (hybrid, group, denoising, ...) and decoder
        # branches (DAC-DETR, ...); both empty for plain models
        self.query_groups = build_query_group_providers(cfg)
        self.branches = build_branches(cfg)
        self.heads = PredictionHeads(d, cfg.num_classes, cfg.dec_layers, refine=cfg.with_box_refine,
                                     two_stage=cfg.two_stage, one_to_many=ms.enabled,
                                     share_class=ms.share_class_head, share_box=ms.share_box_head)
        for branch in self.branches:  # a branch may start heads of its own from the detector's
            branch.init_from_heads(self.heads)
        # instance masks (Mask-Deformable-DETR); None for box-only detectors
        # (on the first feature level the neck keeps: its stride is that backbone level's)
        level0_stride = self.backbone.strides[-self.neck.num_backbone_levels]
        self.mask_head = MaskHead(d, cfg.mask_head.mask_dim, level0_stride) if cfg.mask_head.enabled else None

    def _init_transformer(self) -> None:
        for module in (self.encoder.layers, self.decoder, self.queries):
            for p in module.parameters():
                if p.dim() > 1:
                    nn.init.xavier_uniform_(p)
        for m in self.modules():
            if isinstance(m, MultiScaleDeformableAttention):
                m.reset_parameters()
        if isinstance(self.queries, (LearnedQueries, AnchorQueries)):
            self.queries.reset_parameters()
        # embeddings are N(0, 1) like torch's default, not xavier
        if isinstance(self.queries, LearnedQueries):
            nn.init.normal_(self.queries.query_embed.weight)
        elif isinstance(self.queries, TwoStageQueries) and self.queries.content_embed is not None:
            nn.init.normal_(self.queries.content_embed.weight)

    def forward(self, images: Tensor, pixel_mask: Tensor, all_streams: bool | None = None,
                targets: list[dict[str, Tensor]] | None = None) -> DetectorOutput:
        """
        images:      (B, 3, H, W) normalized, zero-padded bottom/right
        pixel_mask:  (B, H, W) bool, True on padding
        all_streams: also compute training-only streams (one-to-many, and the streams of the
                     methods' query groups and decoder branches); default: in training mode
        targets:     training targets, for query groups built from them (denoising); optional
        returns:     DetectorOutput with `one_to_one` (and `one_to_many`) streams of
                     logits (L, B, Q, C) and boxes (L, B, Q, 4), one stream per query group
                     (L, B, E, ...) and per branch, and two-stage proposals; with a mask head every
                     decoder stream but the branches' also carries `masks` (`MaskPredictions`)
        """
        if all_streams is None:
            all_streams = self.training
        memory = self._encode(images, pixel_mask)
        providers = self.query_groups if all_streams else []
        init = self._initial_queries(memory, max((getattr(p, "num_proposals", 0) for p in providers), default=0))
        context = QueryContext(init, memory.memory, memory.padding_mask, memory.spatial_shapes, targets,
                               source=self.queries)
        groups = [provider(context) for provider in providers]
        queries = assemble_queries(init, groups, ONE_TO_ONE)
        dec = self.decoder(queries, memory, list(self.heads.box_heads), tap=all_streams,
                           tap_queries=queries.slices[ONE_TO_ONE].stop if groups else None,
                           query_position=self.queries.position if isinstance(self.queries, AnchorQueries) else None)
        predictions, one_to_many = self.heads.predict_streams(dec)  # all layers, both streams at once
        for branch in [] if all_streams else self.branches:  # the branches' inference hooks (identity by default)
            predictions = branch.at_inference(predictions)
        pixel_embed = None
        if self.mask_head is not None:
            pixel_embed = self.mask_head.pixel_embedding(memory.memory, memory.spatial_shapes)
            predictions.masks = self.mask_head(dec.hidden, pixel_embed)
        streams = {name: _query_range(predictions, part) for name, part in queries.slices.items()}
        if one_to_many is not None:
            # the one-to-many stream supervises the primary queries only
            if pixel_embed is not None:
                one_to_many.masks = self.mask_head(dec.hidden_o2m, pixel_embed)
            streams[ONE_TO_MANY] = _query_range(one_to_many, queries.slices[ONE_TO_ONE])
        primary = DecoderQueries(init.tgt, init.query_pos, init.reference_points)
        context, encoders = BranchContext(source=self.queries, groups=groups), {}
        for branch in self.branches if all_streams else []:
            made = branch(self.decoder, self.heads, primary, memory, context)
            if isinstance(made, BranchOutput):  # several streams and proposal sets
                streams.update(made.streams)
                encoders.update(made.encoders)
            else:
                streams[branch.name] = made
        return DetectorOutput(streams=streams, encoder=init.encoder,
                              query_meta={group.name: group.meta for group in groups}, encoders=encoders)

    def _encode(self, images: Tensor, pixel_mask: Tensor) -> DecoderMemory:
        """Backbone, neck and encoder: the flattened multi-scale memory (B, S, D) and its layout."""
        if self.cfg.padding_invariant and bool(pixel_mask.any()):
            levels = self._levels_per_image(images, pixel_mask)
        else:
            levels = self.neck(self.backbone(images, pixel_mask), pixel_mask)
        src, mask, pos, spatial_shapes, valid = [], [], [], [], []
        for level, (feat, level_mask) in enumerate(levels):
            h, w = feat.shape[-2:]
            spatial_shapes.append((h, w))
            src.append(feat.flatten(2).transpose(1, 2))
            mask.append(level_mask.flatten(1))
            level_pos = self.position(level_mask).to(feat.dtype).flatten(2).transpose(1, 2)
            pos.append(level_pos + self.encoder.level_embed[level].view(1, 1, -1))
            valid.append(_valid_ratio(level_mask))
        src, mask, pos = torch.cat(src, 1), torch.cat(mask, 1), torch.cat(pos, 1)
        valid_ratios = torch.stack(valid, 1)
        memory = self.encoder(src, pos, spatial_shapes, valid_ratios, mask)
        return DecoderMemory(memory, spatial_shapes, valid_ratios, mask)

    def _initial_queries(self, memory: DecoderMemory, num_extra: int) -> QueryInit:
        """The primary queries; two-stage: from the encoder proposals, with `num_extra` more
        proposals ranked after them for the query groups that take them (H-DETR hybrid)."""
        if isinstance(self.queries, TwoStageQueries):
            return self.queries(memory.memory, memory.padding_mask, memory.spatial_shapes,
                                self.heads.encoder_class_head, self.heads.encoder_box_head, num_extra=num_extra)
        return self.queries(memory.memory)

    def _levels_per_image(self, images: Tensor, pixel_mask: Tensor) -> list[tuple[Tensor, Tensor]]:
        """Backbone + input projections on each image's unpadded area, then padded per level.

        Exactly what the image gives alone: no padded pixels reach its convolutions
        or GroupNorm statistics. Returns per level (B, D, H_l, W_l) and masks (B, H_l, W_l).
        """
        heights = (~pixel_mask[:, :, 0]).sum(1).tolist()
        widths = (~pixel_mask[:, 0, :]).sum(1).tolist()
        per_image = []
        for i, (h, w) in enumerate(zip(heights, widths)):
            image = images[i : i + 1, :, :h, :w]
            mask = pixel_mask[i : i + 1, :h, :w]
            per_image.append([feat for feat, _ in self.neck(self.backbone(image, mask), mask)])
        levels = []
        for level in range(len(per_image[0])):
            feats = [maps[level] for maps in per_image]
            h_max = max(f.shape[-2] for f in feats)
            w_max = max(f.shape[-1] for f in feats)
            batch = feats[0].new_zeros(len(feats), feats[0].shape[1], h_max, w_max)
            mask = torch.ones(len(feats), h_max, w_max, dtype=torch.bool, device=batch.device)
            for i, f in enumerate(feats):
                batch[i, :, : f.shape[-2], : f.shape[-1]] = f[0]
                mask[i, : f.shape[-2], : f.shape[-1]] = False
            levels.append((batch, mask))
        return levels


def _query_range(predictions: StreamPredictions, part: slice) -> StreamPredictions:
    """The predictions of queries `part` (dim 2 of (L, B, Q, ...)); the whole stream when it covers all."""
    if part.start == 0 and part.stop == predictions.logits.shape[2]:
        return predictions
    masks = predictions.masks.queries(part) if predictions.masks is not None else None
    return StreamPredictions(logits=predictions.logits[:, :, part], boxes=predictions.boxes[:, :, part],
                             masks=masks)


def _valid_ratio(mask: Tensor) -> Tensor:
    """mask: (B, H, W) True on padding -> (B, 2) valid fraction (w, h)."""
    _, h, w = mask.shape
    valid_h = (~mask[:, :, 0]).sum(1).float() / h
    valid_w = (~mask[:, 0, :]).sum(1).float() / w
    return torch.stack([valid_w, valid_h], -1)
