"""The training and evaluation pipelines of Deformable DETR, built from `TransformConfig`."""

from __future__ import annotations

from msdetr.config.data import TransformConfig
from msdetr.data.transforms import (
    Compose,
    Normalize,
    RandomChoice,
    RandomHorizontalFlip,
    RandomResize,
    RandomSizeCrop,
)
from msdetr.errors import MsdetrError


def _check(config: TransformConfig) -> None:
    sizes = {
        "train_min_sizes": config.train_min_sizes,
        "crop_resize_sizes": config.crop_resize_sizes,
        "train_max_size": [config.train_max_size],
        "crop_min_size": [config.crop_min_size],
        "crop_max_size": [config.crop_max_size],
        "eval_min_size": [config.eval_min_size],
        "eval_max_size": [config.eval_max_size],
    }
    for name, values in sizes.items():
        if not values or any(not isinstance(v, int) or v < 1 for v in values):
            raise MsdetrError(f"data.transforms.{name}: sizes must be positive integers, got {values}")
    if config.crop_min_size > config.crop_max_size:
        raise MsdetrError(
            f"data.transforms: crop_min_size {config.crop_min_size} > crop_max_size {config.crop_max_size}"
        )
    if len(config.mean) != 3 or len(config.std) != 3 or min(config.std) <= 0:
        raise MsdetrError(f"data.transforms: mean and std need 3 values (R, G, B), std > 0; got "
                          f"mean={config.mean}, std={config.std}")
    for name in ("flip_probability", "crop_probability"):
        if not 0.0 <= getattr(config, name) <= 1.0:
            raise MsdetrError(f"data.transforms.{name}: must be in [0, 1], got {getattr(config, name)}")


def build_train_transforms(config: TransformConfig | None = None) -> Compose:
    """Flip; then multi-scale resize, or resize -> random crop -> multi-scale resize;
    then normalize."""
    config = config or TransformConfig()
    _check(config)
    multi_scale = RandomResize(config.train_min_sizes, max_size=config.train_max_size)
    resize_crop_resize = Compose(
        [
            RandomResize(config.crop_resize_sizes),
            RandomSizeCrop(config.crop_min_size, config.crop_max_size),
            RandomResize(config.train_min_sizes, max_size=config.train_max_size),
        ]
    )
    return Compose(
        [
            RandomHorizontalFlip(config.flip_probability),
            RandomChoice(resize_crop_resize, multi_scale, p=config.crop_probability),
            Normalize(config.mean, config.std),
        ]
    )


def build_eval_transforms(config: TransformConfig | None = None) -> Compose:
    """Resize the shorter side to `eval_min_size` (longer at most `eval_max_size`); normalize."""
    config = config or TransformConfig()
    _check(config)
    return Compose(
        [
            RandomResize([config.eval_min_size], max_size=config.eval_max_size),
            Normalize(config.mean, config.std),
        ]
    )
