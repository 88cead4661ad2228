"""Names of loss terms and logged values, and their official MS-DETR / Deformable-DETR names.

Our names are ``<stream>.layer<i>.<term>`` for decoder layers (i is 0-based, the
final layer is L-1) and ``encoder.<term>`` for the two-stage proposals, with

    term: cls (classification), bbox (L1), giou (1 - GIoU), mask, dice   -- losses
          class_error, cardinality_error                                 -- logs

e.g. ``one_to_one.layer5.cls``, ``one_to_many.layer0.giou``, ``encoder.bbox``.

The official code names the final one-to-one layer ``loss_ce`` / ``loss_bbox`` /
``loss_giou``, earlier layers with suffix ``_<i>``, the one-to-many stream
``_o2m`` / ``_<i>_o2m`` and the encoder ``_enc``.
"""

from __future__ import annotations

from msdetr.modeling.outputs import ONE_TO_MANY, ONE_TO_ONE
from msdetr.supervision.base import ENCODER

LOSS_TERMS = ("cls", "bbox", "giou")
MASK_TERMS = ("mask", "dice")  # tasks with mask predictions (mask head)
LOG_TERMS = ("class_error", "cardinality_error")

_OFFICIAL_TERM = {
    "cls": "loss_ce",
    "bbox": "loss_bbox",
    "giou": "loss_giou",
    "class_error": "class_error",
    "cardinality_error": "cardinality_error",
}
_OFFICIAL_STREAM_SUFFIX = {ONE_TO_ONE: "", ONE_TO_MANY: "_o2m"}


def term_name(task_name: str, term: str) -> str:
    """`<task name>.<term>`, e.g. ('one_to_one.layer2', 'cls') -> 'one_to_one.layer2.cls'."""
    return f"{task_name}.{term}"


def parse_name(name: str) -> tuple[str, int | None, str]:
    """'one_to_many.layer1.giou' -> ('one_to_many', 1, 'giou'); 'encoder.cls' -> ('encoder', None, 'cls')."""
    parts = name.split(".")
    if len(parts) == 2:
        return parts[0], None, parts[1]
    if len(parts) == 3 and parts[1].startswith("layer") and parts[1][5:].isdigit():
        return parts[0], int(parts[1][5:]), parts[2]
    raise ValueError(f"not a loss term name: {name!r}")


def to_official_name(name: str, num_decoder_layers: int) -> str | None:
    """The official name of one of our term names, or None when the official code has no equivalent."""
    stream, layer, term = parse_name(name)
    if term not in _OFFICIAL_TERM:
        return None
    official = _OFFICIAL_TERM[term]
    if stream == ENCODER:
        return f"{official}_enc" if layer is None else None
    if stream not in _OFFICIAL_STREAM_SUFFIX or layer is None or not 0 <= layer < num_decoder_layers:
        return None
    layer_suffix = "" if layer == num_decoder_layers - 1 else f"_{layer}"
    return f"{official}{layer_suffix}{_OFFICIAL_STREAM_SUFFIX[stream]}"
