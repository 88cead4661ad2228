"""Conversion of checkpoints in the official MS-DETR / Deformable DETR format.

An official checkpoint is `{"model": state_dict, "args": argparse.Namespace, ...}`.
`config_from_official_args` derives our ModelConfig from the args,
`convert_official_state_dict` maps the parameter names.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from msdetr.config.model import BackboneConfig, HybridQueriesConfig, MixedSupervisionConfig, ModelConfig
from msdetr.errors import MsdetrError

# (official prefix regex, our replacement); first match wins
_RENAMES: list[tuple[str, str]] = [
    (r"^backbone\.0\.body\.", "backbone.body."),
    (r"^input_proj\.", "neck.projections."),
    (r"^transformer\.level_embed$", "encoder.level_embed"),
    (r"^transformer\.encoder\.layers\.", "encoder.layers."),
    (r"^transformer\.decoder\.layers\.", "decoder.layers."),
    (r"^transformer\.(enc_output|enc_output_norm|pos_trans|pos_trans_norm|reference_points)\.", r"queries.\1."),
]


@dataclass
class ConversionReport:
    """What the conversion did: keys it could not place, and duplicates it dropped."""

    unplaced: list[str] = field(default_factory=list)
    dropped_duplicates: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


def official_args_to_dict(args: Any) -> dict[str, Any]:
    """argparse.Namespace or dict -> dict."""
    if isinstance(args, Mapping):
        return dict(args)
    if hasattr(args, "__dict__"):
        return dict(vars(args))
    raise MsdetrError("official checkpoint: 'args' is neither a Namespace nor a dict; pass the args explicitly")


def config_from_official_args(args: Any, state_dict: Mapping[str, Tensor] | None = None) -> ModelConfig:
    """Build our ModelConfig from the official argument namespace (as dict or Namespace).

    The number of classes is read from the class head in `state_dict` when given
    (the official code derives it from the dataset name).
    """
    a = official_args_to_dict(args)
    num_classes = 91
    if state_dict is not None and "class_embed.0.weight" in state_dict:
        num_classes = state_dict["class_embed.0.weight"].shape[0]
    elif a.get("dataset_file", "coco") == "coco_panoptic":
        num_classes = 250
    elif a.get("dataset_file", "coco") != "coco":
        num_classes = 20
    scale = float(a.get("position_embedding_scale", 2 * math.pi))
    if abs(scale - 2 * math.pi) > 1e-6:
        raise MsdetrError(f"official args: position_embedding_scale={scale} is not supported (only 2*pi)")
    if a.get("masks", False):
        raise MsdetrError("official args: masks=True (segmentation) checkpoints are not supported yet")
    use_ms = bool(a.get("use_ms_detr", False))
    return ModelConfig(
        num_classes=num_classes,
        hidden_dim=int(a.get("hidden_dim", 256)),
        nheads=int(a.get("nheads", 8)),
        enc_layers=int(a.get("enc_layers", 6)),
        dec_layers=int(a.get("dec_layers", 6)),
        dim_feedforward=int(a.get("dim_feedforward", 1024)),
        dropout=float(a.get("dropout", 0.1)),
        # H-DETR names the primary queries num_queries_one2one and adds num_queries_one2many
        num_queries=int(a.get("num_queries_one2one", a.get("num_queries", 300))),
        num_feature_levels=int(a.get("num_feature_levels", 4)),
        enc_n_points=int(a.get("enc_n_points", 4)),
        dec_n_points=int(a.get("dec_n_points", 4)),
        with_box_refine=bool(a.get("with_box_refine", False)),
        two_stage=bool(a.get("two_stage", False)),
        mixed_selection=bool(a.get("mixed_selection", False)),
        look_forward_twice=bool(a.get("look_forward_twice", False)),
        padding_invariant=False,
        backbone=BackboneConfig(
            name=str(a.get("backbone", "resnet50")),
            dilation=bool(a.get("dilation", False)),
            # lr_backbone 0: the official code freezes the whole backbone
            freeze_at="all" if float(a.get("lr_backbone", 2e-5)) <= 0 else "layer1",
        ),
        hybrid=HybridQueriesConfig(num_queries=int(a.get("num_queries_one2many", 0) or 0)),
        mixed_supervision=MixedSupervisionConfig(
            enabled=use_ms, tap="c", aux_ffn=bool(a.get("use_aux_ffn", True)) and use_ms
        ),
    )


def convert_official_state_dict(
    state_dict: Mapping[str, Tensor], cfg: ModelConfig
) -> tuple[dict[str, Tensor], ConversionReport]:
    """Map official parameter names to ours.

    The official model stores each head twice (`class_embed.N` and
    `transformer.decoder.class_embed.N` are the same tensors): the decoder copies
    are checked to be equal and dropped. With two-stage, head index
    `dec_layers` is the encoder proposal head.
    """
    report = ConversionReport()
    out: dict[str, Tensor] = {}
    num_layers = cfg.dec_layers
    for key, value in state_dict.items():
        if key.startswith(("transformer.decoder.class_embed.", "transformer.decoder.bbox_embed.")):
            twin = key.removeprefix("transformer.decoder.")
            if twin in state_dict and torch.equal(state_dict[twin], value):
                report.dropped_duplicates.append(key)
                continue
            report.unplaced.append(key)
            continue
        if key == "query_embed.weight" and cfg.hybrid.num_queries > 0:
            # H-DETR: one embedding for the primary queries, then the hybrid branch's
            out.update(_split_query_embed(value, cfg))
            continue
        new = _rename(key, cfg, num_layers)
        if new is None:
            report.unplaced.append(key)
        else:
            out[new] = value
    return out, report


def _rename(key: str, cfg: ModelConfig, num_layers: int) -> str | None:
    for pattern, repl in _RENAMES:
        if re.match(pattern, key):
            return re.sub(pattern, repl, key)
    if key == "query_embed.weight":
        return "queries.content_embed.weight" if cfg.two_stage else "queries.query_embed.weight"
    m = re.match(r"^(class_embed|bbox_embed)\.(\d+)\.(.*)$", key)
    if m:
        kind, index, rest = m.group(1), int(m.group(2)), m.group(3)
        name = "class" if kind == "class_embed" else "box"
        if index < num_layers:
            return f"heads.{name}_heads.{index}.{rest}"
        if index == num_layers and cfg.two_stage:
            return f"heads.encoder_{name}_head.{rest}"
    return None


def _split_query_embed(value: Tensor, cfg: ModelConfig) -> dict[str, Tensor]:
    """H-DETR's (Q + E, ...) query embedding -> the primary rows and the hybrid provider's rows."""
    q = cfg.num_queries
    if value.shape[0] != q + cfg.hybrid.num_queries:
        raise MsdetrError(
            f"official checkpoint: query_embed.weight has {value.shape[0]} rows, expected "
            f"num_queries_one2one + num_queries_one2many = {q} + {cfg.hybrid.num_queries}"
        )
    kind = "content_embed" if cfg.two_stage else "query_embed"
    hybrid_index = 0  # the hybrid provider comes first among the query-group providers
    return {f"queries.{kind}.weight": value[:q], f"query_groups.{hybrid_index}.{kind}.weight": value[q:]}


def load_official_checkpoint(path: str) -> tuple[ModelConfig, dict[str, Tensor], ConversionReport, dict[str, Any]]:
    """Read an official checkpoint file; return (config, converted state dict, report, official args)."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except FileNotFoundError:
        raise MsdetrError(f"{path}: file not found") from None
    except Exception as err:  # noqa: BLE001 - any unreadable file
        raise MsdetrError(f"{path}: cannot read as a PyTorch checkpoint ({type(err).__name__}: {err})") from None
    if not isinstance(ckpt, Mapping) or "model" not in ckpt or "args" not in ckpt:
        raise MsdetrError(f"{path}: not an official checkpoint (expected keys 'model' and 'args')")
    args = official_args_to_dict(ckpt["args"])
    state = {k.removeprefix("module."): v.float() if v.is_floating_point() else v for k, v in ckpt["model"].items()}
    cfg = config_from_official_args(args, state)
    converted, report = convert_official_state_dict(state, cfg)
    return cfg, converted, report, args
