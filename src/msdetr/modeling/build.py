"""The one place a ModelConfig becomes a detector."""

from __future__ import annotations

from msdetr.config.model import ModelConfig
from msdetr.errors import MsdetrError
from msdetr.modeling.detector import DeformableDETR


def build_model(cfg: ModelConfig) -> DeformableDETR:
    """Validate the architecture settings and build the detector (random init unless backbone weights are set)."""
    if cfg.mixed_selection and not cfg.two_stage:
        raise MsdetrError("model.mixed_selection: needs model.two_stage: true (queries come from proposals)")
    if cfg.look_forward_twice and not cfg.with_box_refine:
        raise MsdetrError("model.look_forward_twice: needs model.with_box_refine: true")
    if cfg.hidden_dim % cfg.nheads:
        raise MsdetrError(f"model.hidden_dim ({cfg.hidden_dim}) must be divisible by model.nheads ({cfg.nheads})")
    if cfg.hidden_dim % 32:
        raise MsdetrError(f"model.hidden_dim ({cfg.hidden_dim}) must be a multiple of 32 (GroupNorm groups)")
    if cfg.two_stage and cfg.hidden_dim % 4:
        raise MsdetrError(f"model.hidden_dim ({cfg.hidden_dim}) must be a multiple of 4 for two-stage")
    if cfg.num_classes < 1 or cfg.num_queries < 1:
        raise MsdetrError("model.num_classes and model.num_queries must be >= 1")
    _check_queries(cfg)
    return DeformableDETR(cfg)


def _check_queries(cfg: ModelConfig) -> None:
    """Anchor (DAB) queries and denoising groups: the combinations that make sense."""
    if cfg.anchor_queries and cfg.two_stage:
        raise MsdetrError("model.anchor_queries: single-stage only; set model.two_stage: false")
    dn = cfg.denoising
    if dn.method not in ("none", "dn", "cdn"):
        raise MsdetrError(f"model.denoising.method: got {dn.method!r}; use one of 'none', 'dn', 'cdn'")
    if not dn.enabled:
        return
    if not (cfg.two_stage or cfg.anchor_queries):
        raise MsdetrError("model.denoising: denoising queries are boxes; needs model.two_stage: true or "
                          "model.anchor_queries: true (plain single-stage queries are 2-d points)")
    if dn.label_indicator and not cfg.anchor_queries:
        raise MsdetrError("model.denoising.label_indicator: needs model.anchor_queries: true (DN-DETR's DAB queries)")
    if dn.method == "dn" and dn.num_groups < 1:
        raise MsdetrError(f"model.denoising.num_groups: got {dn.num_groups}; it must be >= 1")
    if dn.label_noise < 0 or dn.box_noise < 0:
        raise MsdetrError("model.denoising.label_noise and box_noise must be >= 0")
