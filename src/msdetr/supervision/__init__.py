"""Supervision: assigners (Hungarian, top-K, repeated Hungarian, encoder) and one strategy per
method (one_to_one, mixed, align, hybrid, group, denoising, dac, encoder), composed."""

from msdetr.supervision.align import AlignSupervision
from msdetr.supervision.base import (
    Assigner,
    Assignment,
    LayerPredictions,
    SupervisionStrategy,
    SupervisionTask,
)
from msdetr.supervision.compose import ComposedSupervision, Rescaled
from msdetr.supervision.dac import DacSupervision
from msdetr.supervision.denoising import DenoisingSupervision
from msdetr.supervision.encoder import EncoderAssigner, EncoderSupervision
from msdetr.supervision.group import GroupSupervision
from msdetr.supervision.hungarian import HungarianAssigner
from msdetr.supervision.hybrid import HybridSupervision
from msdetr.supervision.merge import merge_one_to_one
from msdetr.supervision.mixed import MixedSupervision
from msdetr.supervision.one_to_one import OneToOneSupervision
from msdetr.supervision.topk import TopKAssigner

__all__ = [
    "AlignSupervision",
    "Assigner",
    "Assignment",
    "ComposedSupervision",
    "DacSupervision",
    "DenoisingSupervision",
    "EncoderAssigner",
    "EncoderSupervision",
    "GroupSupervision",
    "HungarianAssigner",
    "HybridSupervision",
    "LayerPredictions",
    "MixedSupervision",
    "OneToOneSupervision",
    "Rescaled",
    "SupervisionStrategy",
    "SupervisionTask",
    "TopKAssigner",
    "merge_one_to_one",
]
