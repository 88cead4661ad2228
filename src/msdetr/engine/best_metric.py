"""`train.best_metric`: the evaluation number that picks `best.pt` and heads the run's reports.

"auto" is segm mAP for a model with a mask head and bbox mAP otherwise; any of the 12 COCO
numbers (`bbox_mAP`, `bbox_mAP_50`, ..., `segm_mAP`, ... for mask models) may be named.
Higher is better for all of them.
"""

from __future__ import annotations

from msdetr.config.schema import Config
from msdetr.errors import MsdetrError
from msdetr.evaluation.coco_eval import SEGM_STAT_NAMES, STAT_NAMES

AUTO = "auto"


def resolve_best_metric(cfg: Config) -> str:
    """The metric name `train.best_metric` stands for; `MsdetrError` when it names no COCO number
    or a segm number of a model without a mask head."""
    name = cfg.train.best_metric
    masks = cfg.model.mask_head.enabled
    if name == AUTO:
        return "segm_mAP" if masks else "bbox_mAP"
    allowed = STAT_NAMES + (SEGM_STAT_NAMES if masks else ())
    if name in allowed:
        return name
    if name in SEGM_STAT_NAMES:
        raise MsdetrError(
            f"train.best_metric is {name!r} but the model has no mask head (model.mask_head.enabled: false); "
            f"use a bbox_ metric or 'auto'"
        )
    raise MsdetrError(
        f"train.best_metric is {name!r}; it must be 'auto' or one of {', '.join(allowed)}"
    )


def metric_family(name: str) -> str:
    """'bbox' or 'segm': the COCO numbers a metric belongs to."""
    return "segm" if name.startswith("segm_") else "bbox"
