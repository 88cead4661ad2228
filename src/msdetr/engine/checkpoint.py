"""Training checkpoints: a model file (`msdetr.model_io` format) plus the training state.

Layout (all written atomically: temporary file, fsync, rename):
    format, version, model_config, model, classes   as every msdetr model file; `model` holds
                                                     the weights to use (EMA ones when enabled)
    run_config    the resolved run configuration (dict)
    metrics       the latest evaluation metrics (dict, may be empty)
    train_state   (only in `last.pt`) epoch, batch_in_epoch, step, optimizer, schedule,
                  scaler, ema, raw_model (weights being trained, when EMA is on), rng
                  (one entry per rank), nonfinite, best_map (value of best_metric), best_metric,
                  world_size
`last.pt` can be resumed; `best.pt` (best `train.best_metric`: segm mAP for mask models, else bbox mAP)
is a model file without training state.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from msdetr.config.dataclass_io import to_dict
from msdetr.config.schema import Config
from msdetr.errors import MsdetrError
from msdetr.model_io import FORMAT, save_model_file

LAST = "last.pt"
BEST = "best.pt"


def save_checkpoint(
    path: str | Path,
    cfg: Config,
    weights: dict[str, torch.Tensor],
    class_names: list[str] | None,
    category_ids: list[int] | None,
    metrics: dict[str, Any] | None = None,
    train_state: dict[str, Any] | None = None,
) -> None:
    """Write a model file with the resolved config (and the training state, for `last.pt`)."""
    extra: dict[str, Any] = {"run_config": to_dict(cfg), "metrics": dict(metrics or {})}
    if train_state is not None:
        extra["train_state"] = train_state
    save_model_file(path, cfg.model, weights, class_names, category_ids, **extra)


def resolve_resume_path(target: str | Path) -> Path:
    """`--resume RUN_OR_CKPT`: a run folder means its `last.pt`."""
    path = Path(target)
    if path.is_dir():
        path = path / LAST
        if not path.is_file():
            raise MsdetrError(
                f"{target}: no {LAST} in this run folder; nothing to resume (the run wrote no checkpoint yet)"
            )
        return path
    if not path.is_file():
        raise MsdetrError(f"{target}: no such run folder or checkpoint file")
    return path


def load_training_checkpoint(path: Path) -> dict[str, Any]:
    """The raw checkpoint dict of a resumable `last.pt`; clear errors for anything else."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # noqa: BLE001 - any unreadable file
        raise MsdetrError(f"{path}: cannot read as a checkpoint ({type(err).__name__}: {err})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise MsdetrError(
            f"{path}: not an msdetr training checkpoint; to start a new run from these weights use --init-weights"
        )
    if "train_state" not in ckpt or "run_config" not in ckpt:
        raise MsdetrError(
            f"{path}: holds weights but no training state (e.g. best.pt); resume from the "
            "run's last.pt, or start a new run from it with --init-weights"
        )
    return ckpt
