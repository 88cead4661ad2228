"""Mr. DETR as one registered method unit: its config sections (`model.mr_detr`,
`supervision.mr_detr`), its streams with their default weights, its decoder branch (routes, second
encoder head, inference score fusion), its strategy, its checks and its overlay."""

from __future__ import annotations

from msdetr.errors import MsdetrError
from msdetr.methods.mr_detr.branch import MrDetrBranch
from msdetr.methods.mr_detr.checks import problems
from msdetr.methods.mr_detr.config import MrDetrModelConfig, MrDetrSupervisionConfig, model_problems
from msdetr.methods.mr_detr.overlay import OVERLAYS
from msdetr.methods.mr_detr.streams import STREAMS
from msdetr.methods.mr_detr.supervision import MrDetrSupervision
from msdetr.methods.unit import MethodUnit, StreamSpec, SupervisionTools


def branch(cfg):
    """The branch of a `ModelConfig` (None when off); an invalid `model.mr_detr` is a one-line error."""
    if not cfg.mr_detr.enabled:
        return None
    for key, value, expected in model_problems(cfg.mr_detr, cfg.two_stage, cfg.mixed_selection):
        raise MsdetrError(f"model.{key}: got {value!r}; it must be {expected}")
    return MrDetrBranch(cfg.mr_detr, cfg.hidden_dim, cfg.dim_feedforward, cfg.dec_layers, cfg.num_classes)


def strategy(tools: SupervisionTools):
    config = tools.config
    if not config.mr_detr.enabled:
        return None
    return MrDetrSupervision(config.mr_detr, tools.top_k, tools.encoder_assigner(), config.denoising_normalization)


# default weights: DETR's (the overlay sets the release's per base: the one-to-one weights on the routes)
UNIT = MethodUnit("mr_detr", streams=tuple(StreamSpec(name) for name in STREAMS), branch=branch, strategy=strategy,
                  overlays=OVERLAYS, checks=problems, model_section=MrDetrModelConfig,
                  supervision_section=MrDetrSupervisionConfig)
