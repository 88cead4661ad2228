"""Checkpoints and data for the inference tests.

- `random_checkpoint`: a tiny detector with random weights saved as an msdetr checkpoint
  whose saved config evaluates at a small size (fast predictions).
- `squares_dataset`: a COCO dataset of one red or blue square per image on grey.
- `trained_squares_checkpoint`: a tiny detector trained on it with `msdetr.engine.Trainer`,
  trained once per test session (about 40 s on one CPU core).
"""

from __future__ import annotations

import atexit
import functools
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from msdetr.config.dataclass_io import to_dict
from msdetr.config.schema import Config
from msdetr.model_io import atomic_save, save_model_file
from msdetr.modeling.build import build_model
from support.tiny import tiny_model_config

SQUARE_CLASSES = [{"id": 1, "name": "red"}, {"id": 2, "name": "blue"}]
SQUARE_COLORS = [(230, 40, 40), (40, 80, 230)]


def random_checkpoint(path: Path, seed: int = 0, eval_size: int = 64, class_names=None, category_ids=None,
                      **overrides) -> Path:
    """Save a random-weight tiny detector with a run config evaluating at `eval_size`:
    `tiny_model_config` with 3 classes, 12 queries, 2 feature levels (mixed supervision unless
    mixed=False), and `overrides` (any `ModelConfig` field)."""
    overrides.setdefault("mixed", True)
    model_cfg = tiny_model_config(**{"num_classes": 3, "num_queries": 12, "num_feature_levels": 2, **overrides})
    torch.manual_seed(seed)
    model = build_model(model_cfg)
    names = class_names if class_names is not None else [f"class{i}" for i in range(model_cfg.num_classes)]
    ids = category_ids if category_ids is not None else [10 + i for i in range(model_cfg.num_classes)]
    save_model_file(path, model_cfg, model.state_dict(), names, ids)
    run = Config(model=model_cfg)
    run.data.transforms = run.data.transforms.scaled_to(eval_size)
    run.supervision.strategy = "mixed" if model_cfg.mixed_supervision.enabled else "one_to_one"
    checkpoint = torch.load(path, weights_only=False)
    checkpoint["run_config"] = to_dict(run)
    atomic_save(checkpoint, path)
    return path


def squares_dataset(root: Path, split: str, count: int, size: int = 64, seed: int = 0) -> Path:
    """`count` images of `size` x `size`: one red (class 1) or blue (class 2) axis-aligned square
    with sides in [size/4, size/2] on grey, in COCO layout under `root`. Returns `root`."""
    rng = np.random.default_rng(seed)
    (root / split).mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for i in range(count):
        pixels = np.full((size, size, 3), 128, np.uint8)
        label = int(rng.integers(0, 2))
        w, h = (int(v) for v in rng.integers(size // 4, size // 2 + 1, size=2))
        x0, y0 = int(rng.integers(0, size - w)), int(rng.integers(0, size - h))
        pixels[y0 : y0 + h, x0 : x0 + w] = SQUARE_COLORS[label]
        name = f"{i:04d}.png"
        Image.fromarray(pixels).save(root / split / name)
        images.append({"id": i + 1, "file_name": name, "height": size, "width": size})
        annotations.append({"id": i + 1, "image_id": i + 1, "category_id": label + 1, "bbox": [x0, y0, w, h],
                            "area": w * h, "iscrowd": 0})
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    coco = {"images": images, "annotations": annotations, "categories": SQUARE_CLASSES}
    (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(coco))
    return root


def _session_dir() -> Path:
    path = Path(tempfile.mkdtemp(prefix="msdetr-inference-tests-"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def train_squares(work: Path, size: int = 48, epochs: int = 19, batch_size: int = 4,
                  overrides: tuple[str, ...] = ()) -> tuple[Path, Path]:
    """Train a tiny MS-DETR on 64 `squares_dataset` images of `size` pixels (19 epochs of 16
    steps by default, cosine schedule); returns (best.pt, data root).

    The backbone stays frozen at its random initialization (only the transformer and heads
    train) and torch uses one thread: a step takes about 0.1 s on a CPU core, and 300 steps
    find the square in almost every validation image (bbox mAP@0.5 about 0.9).
    """
    from msdetr.config.loader import load_config
    from msdetr.engine.trainer import Trainer

    data = work / "squares"
    squares_dataset(data, "train", 64, size=size, seed=0)
    squares_dataset(data, "val", 8, size=size, seed=1)
    cfg = load_config("tiny", [
        f"data.root={data}", "model.hidden_dim=64", "model.dim_feedforward=128", "model.dec_layers=2",
        "model.num_queries=10", "model.num_feature_levels=2", "model.backbone.freeze_at=all",
        f"data.transforms.train_min_sizes=[{size}]", f"data.transforms.train_max_size={size}",
        f"data.transforms.eval_min_size={size}", f"data.transforms.eval_max_size={size}",
        "data.num_workers=0", f"train.batch_size={batch_size}", f"train.reference_batch_size={batch_size}",
        f"train.epochs={epochs}", "train.num_threads=1", "train.eval_every=0",
        "train.schedule.warmup_steps=10", "train.optimizer.lr=0.001", "train.optimizer.lr_backbone=0.001",
        "train.progress=false", "train.vis_images=0", "train.num_workers=0", "train.device=cpu",
        "train.seed=0", "train.time_limit_minutes=null", *overrides,
    ])
    threads = torch.get_num_threads()
    try:
        result = Trainer(cfg, work / "run", verbose=False).fit()
    finally:
        torch.set_num_threads(threads)  # the trainer sets one thread for the whole process
    return result.run_dir / "best.pt", data


@functools.lru_cache(maxsize=1)
def trained_squares_checkpoint() -> tuple[Path, Path]:
    """(checkpoint, dataset root) of `train_squares`, trained once per test session."""
    return train_squares(_session_dir())
