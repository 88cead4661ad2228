"""Supervision: assigners (Hungarian, top-K, encoder) and strategies (one_to_one, mixed, ...)."""

from msdetr.supervision.base import (
    Assigner,
    Assignment,
    LayerPredictions,
    SupervisionStrategy,
    SupervisionTask,
)
from msdetr.supervision.compose import ComposedSupervision
from msdetr.supervision.encoder import EncoderAssigner, EncoderSupervision
from msdetr.supervision.hungarian import HungarianAssigner
from msdetr.supervision.merge import merge_one_to_one
from msdetr.supervision.mixed import MixedSupervision
from msdetr.supervision.one_to_one import OneToOneSupervision
from msdetr.supervision.topk import TopKAssigner

__all__ = [
    "Assigner",
    "Assignment",
    "ComposedSupervision",
    "EncoderAssigner",
    "EncoderSupervision",
    "HungarianAssigner",
    "LayerPredictions",
    "MixedSupervision",
    "OneToOneSupervision",
    "SupervisionStrategy",
    "SupervisionTask",
    "TopKAssigner",
    "merge_one_to_one",
]
