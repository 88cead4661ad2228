"""Reading and writing model files: ours (`msdetr` checkpoints) and the official format.

Our checkpoint is a dict with at least:
    format: "msdetr", version: 1
    model_config: ModelConfig as a dict
    model: state dict
    classes: {"names": [...], "category_ids": [...]} (category ids for COCO output), optional
Training checkpoints add optimizer/scheduler/... (see msdetr.engine.checkpoint); they load here too.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from msdetr.config.dataclass_io import from_dict, to_dict
from msdetr.config.model import ModelConfig
from msdetr.errors import MsdetrError

FORMAT = "msdetr"
VERSION = 1


@dataclass
class ModelFile:
    """A model read from disk.

    config: the architecture; state_dict: our parameter names;
    class_names / category_ids: per contiguous class index (None if unknown);
    source: "msdetr" or "official"; extra: the remaining checkpoint entries.
    """

    config: ModelConfig
    state_dict: dict[str, Tensor]
    class_names: list[str] | None = None
    category_ids: list[int] | None = None
    source: str = FORMAT
    extra: dict[str, Any] | None = None


def atomic_save(obj: Any, path: str | os.PathLike) -> None:
    """torch.save to a temporary file in the same folder, fsync, then rename over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_model_file(path: str | os.PathLike, config: ModelConfig, state_dict: Mapping[str, Tensor],
                    class_names: list[str] | None = None, category_ids: list[int] | None = None,
                    **extra: Any) -> None:
    """Write an msdetr checkpoint (atomically)."""
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "model_config": to_dict(config),
        "model": dict(state_dict),
        "classes": {"names": class_names, "category_ids": category_ids},
        **extra,
    }
    atomic_save(payload, path)


def load_model_file(path: str | os.PathLike) -> ModelFile:
    """Read our checkpoint or an official one (`{"model", "args"}`), returning our names and config."""
    path = Path(path)
    if not path.is_file():
        raise MsdetrError(f"{path}: checkpoint file not found")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # noqa: BLE001 - any unreadable file
        raise MsdetrError(f"{path}: cannot read as a PyTorch checkpoint ({type(err).__name__}: {err})") from None
    if isinstance(ckpt, Mapping) and ckpt.get("format") == FORMAT:
        cfg = from_dict(ModelConfig, ckpt["model_config"], where=str(path), path="model_config")
        classes = ckpt.get("classes") or {}
        extra = {k: v for k, v in ckpt.items() if k not in ("format", "version", "model_config", "model", "classes")}
        return ModelFile(cfg, dict(ckpt["model"]), classes.get("names"), classes.get("category_ids"), FORMAT, extra)
    if isinstance(ckpt, Mapping) and "model" in ckpt and "args" in ckpt:
        from msdetr.compat.official import config_from_official_args, convert_official_state_dict

        state = {k.removeprefix("module."): v.float() if v.is_floating_point() else v
                 for k, v in ckpt["model"].items()}
        cfg = config_from_official_args(ckpt["args"], state)
        converted, report = convert_official_state_dict(state, cfg)
        if report.unplaced:
            raise MsdetrError(f"{path}: official checkpoint has keys we cannot place: {report.unplaced[:5]}")
        from msdetr.compat.coco_classes import coco_raw_class_names

        # COCO raw category ids are the class indices of official models
        ids = list(range(cfg.num_classes))
        names = coco_raw_class_names(cfg.num_classes) if cfg.num_classes == 91 else None
        return ModelFile(cfg, converted, names, ids, "official", {"official_args": ckpt["args"]})
    raise MsdetrError(f"{path}: not an msdetr checkpoint nor an official one (no 'format' or 'model'+'args' keys)")


def build_from_file(path: str | os.PathLike, strict: bool = True):
    """Build the detector from a model file and load its weights. Returns (model, ModelFile)."""
    from msdetr.modeling.build import build_model

    mf = load_model_file(path)
    mf.config.backbone.weights = None  # weights come from the checkpoint
    model = build_model(mf.config)
    result = model.load_state_dict(mf.state_dict, strict=False)
    if strict and (result.missing_keys or result.unexpected_keys):
        raise MsdetrError(
            f"{path}: weights do not fit the model (missing {result.missing_keys[:3]}, "
            f"unexpected {result.unexpected_keys[:3]})"
        )
    return model, mf
