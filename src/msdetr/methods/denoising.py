"""DN-DETR / DINO denoising: noised ground truth as extra queries (`model.denoising`, provider
`modeling.denoising`), each reconstructing its object (`supervision.denoising_normalization`)."""

from __future__ import annotations

from msdetr.methods.contracts import DENOISING
from msdetr.methods.unit import MethodUnit, StreamSpec, SupervisionTools
from msdetr.modeling.denoising import DenoisingQueries
from msdetr.supervision.denoising import DenoisingSupervision


def provider(cfg):
    return DenoisingQueries(cfg.denoising, cfg.num_classes, cfg.hidden_dim) if cfg.denoising.enabled else None


def strategy(tools: SupervisionTools):
    # tasks only when the detector returns a `denoising` stream
    return DenoisingSupervision(tools.config.denoising_normalization)


UNIT = MethodUnit("denoising", streams=(StreamSpec(DENOISING),), provider=provider, strategy=strategy)
