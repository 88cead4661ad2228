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
    """Anchor (DAB) queries: single-stage only (each method unit checks its own options when it
    builds its part, e.g. denoising queries in `msdetr.methods.denoising`)."""
    if cfg.anchor_queries and cfg.two_stage:
        raise MsdetrError("model.anchor_queries: single-stage only; set model.two_stage: false")
