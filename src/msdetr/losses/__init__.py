"""Losses: the criterion (one batched path, pluggable classification terms) and its builder."""

from msdetr.losses.build import build_criterion
from msdetr.losses.criterion import Criterion, LossResult
from msdetr.losses.names import parse_name, to_official_name

__all__ = ["Criterion", "LossResult", "build_criterion", "parse_name", "to_official_name"]
