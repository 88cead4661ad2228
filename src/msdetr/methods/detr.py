"""DETR's own supervision, the base every method builds on: Hungarian one-to-one matching of the
`one_to_one` stream (every decoder layer) and, two-stage, of the `encoder` proposals."""

from __future__ import annotations

from msdetr.methods.contracts import ENCODER, ONE_TO_ONE
from msdetr.methods.unit import MethodUnit, StreamSpec, SupervisionTools
from msdetr.supervision.encoder import EncoderSupervision
from msdetr.supervision.one_to_one import OneToOneSupervision


def one_to_one(tools: SupervisionTools, primary):
    """The primary strategy every other unit may replace or wrap."""
    return OneToOneSupervision(tools.hungarian)


def encoder(tools: SupervisionTools) -> EncoderSupervision:
    """Encoder proposal supervision (tasks only when the output has proposals)."""
    return EncoderSupervision(tools.encoder_assigner())


UNIT = MethodUnit("detr", streams=(StreamSpec(ONE_TO_ONE),), primary=one_to_one)
ENCODER_UNIT = MethodUnit("encoder", streams=(StreamSpec(ENCODER),), strategy=encoder)
