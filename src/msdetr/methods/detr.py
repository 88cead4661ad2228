"""DETR's own supervision, the base every method builds on: Hungarian one-to-one matching of the
`one_to_one` stream (every decoder layer) and, two-stage, of the `encoder` proposals."""

from __future__ import annotations

from msdetr.methods.contracts import ENCODER, ONE_TO_ONE
from msdetr.methods.unit import MethodUnit, StreamSpec, SupervisionTools
from msdetr.supervision.encoder import EncoderAssigner, EncoderSupervision
from msdetr.supervision.one_to_one import OneToOneSupervision


def one_to_one(tools: SupervisionTools, primary):
    """The primary strategy every other unit may replace or wrap."""
    return OneToOneSupervision(tools.hungarian)


def encoder(tools: SupervisionTools) -> EncoderSupervision:
    """Encoder proposal supervision (tasks only when the output has proposals)."""
    config, costs = tools.config, tools.config.matcher
    return EncoderSupervision(EncoderAssigner(
        cost_bbox=costs.bbox, cost_giou=costs.giou, match_on_anchors=config.encoder_match_on_anchors,
        cost_class=costs.cls if config.encoder_class_cost else 0.0,
        focal_alpha=config.focal_alpha, focal_gamma=config.focal_gamma, iou_epsilon=config.iou_epsilon,
    ))


UNIT = MethodUnit("detr", streams=(StreamSpec(ONE_TO_ONE),), primary=one_to_one)
ENCODER_UNIT = MethodUnit("encoder", streams=(StreamSpec(ENCODER),), strategy=encoder)
