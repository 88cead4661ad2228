"""How a checkpoint wants to be run: its evaluation resize, top-k and NMS.

Our training checkpoints carry the resolved run config (`run_config`); its
`data.transforms` and `eval` sections are used. Official and converted checkpoints
have none, so the COCO defaults apply (shorter side 800, longer at most 1333, top 100).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from msdetr.config.data import TransformConfig
from msdetr.config.dataclass_io import from_dict
from msdetr.config.schema import EvalConfig
from msdetr.model_io import ModelFile


@dataclass
class InferenceSettings:
    """transforms: evaluation resize and normalization; topk: detections kept per image
    before the score threshold; nms_iou: optional class-wise NMS (None: none, as DETR)."""

    transforms: TransformConfig = field(default_factory=TransformConfig)
    topk: int = 100
    nms_iou: float | None = None


def settings_from_model_file(model_file: ModelFile, where: str = "checkpoint") -> InferenceSettings:
    """The settings saved with a checkpoint (its config's `data.transforms` and `eval`
    sections, the only ones inference needs), or the COCO defaults."""
    extra = model_file.extra or {}
    saved = extra.get("run_config", extra.get("config"))
    if not isinstance(saved, dict):
        return InferenceSettings()
    source = f"{where} (saved config)"
    settings = InferenceSettings()
    transforms = (saved.get("data") or {}).get("transforms")
    if transforms is not None:
        settings.transforms = from_dict(TransformConfig, transforms, where=source, path="data.transforms")
    if saved.get("eval") is not None:
        evaluation = from_dict(EvalConfig, saved["eval"], where=source, path="eval")
        settings.topk, settings.nms_iou = evaluation.topk, evaluation.nms_iou
    return settings
