"""Helpers of the Mr. DETR conformance tests: load a fixture, rebuild its weights under msdetr's
names (reference names: tests/make_mrdetr_fixture.py's docstring) and the msdetr model / criterion
of its configuration."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from torch import Tensor

from make_mrdetr_fixture import fixture_state_dict
from msdetr.config.model import ModelConfig
from msdetr.config.supervision import LossWeights, SupervisionConfig

FIXTURES = Path(__file__).resolve().parent / "fixtures"
PIXEL_MEAN = torch.tensor([123.675, 116.280, 103.530]).view(3, 1, 1)
PIXEL_STD = torch.tensor([58.395, 57.120, 57.375]).view(3, 1, 1)

_DECODER_LAYER = {
    "attentions.0.attn.": "decoder.layers.{i}.self_attn.",
    "attentions.0.norm_o2o.": "decoder.layers.{i}.norm2.",
    "attentions.0.norm_o2m.": "branches.0.params.layers.{i}.norm.",
    "attentions.0.instruction_o2m.weight": "branches.0.params.layers.{i}.instruction",
    "attentions.0.instruction_o2m_pos.weight": "branches.0.params.layers.{i}.instruction_pos",
    "attentions.1.": "decoder.layers.{i}.cross_attn.",
    "norms.0.": "decoder.layers.{i}.norm1.",
    "ffns.0.layers.0.linear.linear.": "decoder.layers.{i}.linear1.",
    "ffns.0.layers.1.linear.": "decoder.layers.{i}.linear2.",
    "ffns.0.layers.0.linear.linear_sep.": "branches.0.params.layers.{i}.linear1.",
    "ffns.0.layers.1.linear_sep.": "branches.0.params.layers.{i}.linear2.",
    "norms.1.": "decoder.layers.{i}.norm3.",
}
_ENCODER_LAYER = {
    "attentions.0.": "self_attn.", "norms.0.": "norm1.", "ffns.0.layers.0.0.": "linear1.",
    "ffns.0.layers.1.": "linear2.", "norms.1.": "norm2.",
}
_FIXED = {
    "transformer.level_embeds": "encoder.level_embed",
    "query_embedding.weight": "queries.content_embed.weight",
    "transformer.decoder.class_embed_o2m_encoder.": "branches.0.params.encoder_class_head.",
    "transformer.decoder.bbox_embed_enc_o2m.": "branches.0.params.encoder_box_head.",
    "transformer.enc_output.": "queries.enc_output.",
    "transformer.enc_output_norm.": "queries.enc_output_norm.",
    "transformer.pos_trans.": "queries.pos_trans.",
    "transformer.pos_trans_norm.": "queries.pos_trans_norm.",
}


def load(config: str) -> dict:
    path = FIXTURES / f"mrdetr_{config}.pt"
    if not path.is_file():
        pytest.skip(f"Mr. DETR fixture not found at {path} (make it with tests/make_mrdetr_fixture.py)")
    return torch.load(path, weights_only=False, map_location="cpu")


def msdetr_name(name: str, num_layers: int) -> str | None:
    """msdetr's parameter name of a reference one (None: the reference's twin of a shared head or
    the backbone's unused classifier)."""
    name = re.sub(r"^transformer\.decoder\.(?=(class|bbox)_embed\.)", "", name)
    if name.startswith("backbone."):
        return None if name.startswith("backbone.fc.") else "backbone.body." + name.removeprefix("backbone.")
    if m := re.match(r"neck\.convs\.(\d+)\.(conv|norm)\.(.*)", name):
        return f"neck.projections.{m[1]}.{0 if m[2] == 'conv' else 1}.{m[3]}"
    if m := re.match(r"transformer\.encoder\.layers\.(\d+)\.(.*)", name):
        return next(f"encoder.layers.{m[1]}.{new}{m[2][len(old):]}" for old, new in _ENCODER_LAYER.items()
                    if m[2].startswith(old))
    if m := re.match(r"transformer\.decoder\.layers\.(\d+)\.(.*)", name):
        old, new = max(((o, n) for o, n in _DECODER_LAYER.items() if m[2].startswith(o)), key=lambda x: len(x[0]))
        return new.format(i=m[1]) + m[2][len(old):]
    if m := re.match(r"(class|bbox)_embed\.(\d+)\.(.*)", name):
        kind = "class" if m[1] == "class" else "box"
        index = int(m[2])
        head = f"heads.encoder_{kind}_head" if index == num_layers else f"heads.{kind}_heads.{index}"
        return f"{head}.{m[3]}"
    for old, new in _FIXED.items():
        if name == old or (old.endswith(".") and name.startswith(old)):
            return new + name[len(old):]
    raise KeyError(f"no msdetr name for the reference parameter {name}")


def to_msdetr(state: dict[str, Tensor], num_layers: int) -> dict[str, Tensor]:
    out = {}
    for name, value in state.items():
        new = msdetr_name(name, num_layers)
        if new is not None:
            out[new] = value
    return out


def model_config(fixture: dict) -> ModelConfig:
    c = fixture["config"]
    cfg = ModelConfig(num_classes=c["num_classes"], hidden_dim=c["embed_dim"], nheads=c["num_heads"],
                      enc_layers=c["num_encoder_layers"], dec_layers=c["num_decoder_layers"],
                      dim_feedforward=c["feedforward_dim"], dropout=0.0, num_queries=c["num_queries"],
                      num_feature_levels=c["num_feature_levels"], two_stage=True, with_box_refine=True,
                      mixed_selection=True, look_forward_twice=True, padding_invariant=False)
    cfg.backbone.freeze_at = "all"
    cfg.mr_detr.enabled = True
    return cfg


def fixture_weights(fixture: dict) -> dict[str, Tensor]:
    return to_msdetr(fixture_state_dict(fixture, fixture["backbone_seed"]), fixture["config"]["num_decoder_layers"])


def supervision_config() -> SupervisionConfig:
    """The released Deformable recipe (weights 2 / 5 / 2, encoder heads x3, detrex's 1e-6 IoU epsilon)."""
    cfg = SupervisionConfig(strategy="one_to_one", iou_epsilon=1e-6)
    base, enc = LossWeights(cls=2.0, bbox=5.0, giou=2.0), LossWeights(cls=6.0, bbox=15.0, giou=6.0)
    w = cfg.loss_weights
    w.one_to_one, w.encoder, w.mr_encoder, w.mr_instructive, w.mr_sep = base, enc, enc, base, base
    cfg.mr_detr.enabled = True
    return cfg


def normalized_batch(images: list[Tensor], padding_mask: bool = True) -> tuple[Tensor, Tensor]:
    """The reference's (x - mean) / std on 0..255 images, zero-padded bottom/right after normalizing;
    mask True on padding (all False: the reference's eval mode)."""
    h, w = max(i.shape[1] for i in images), max(i.shape[2] for i in images)
    batch = torch.zeros(len(images), 3, h, w)
    mask = torch.ones(len(images), h, w, dtype=torch.bool)
    for k, image in enumerate(images):
        batch[k, :, : image.shape[1], : image.shape[2]] = (image.float() - PIXEL_MEAN) / PIXEL_STD
        mask[k, : image.shape[1], : image.shape[2]] = False
    return batch, mask if padding_mask else torch.zeros_like(mask)
