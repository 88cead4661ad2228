"""Typed configuration of the data layer: where the data is, how it is read and augmented.

Plain dataclasses with defaults; the defaults are the Deformable DETR COCO recipe.
`msdetr.data.build` is the only place that turns these into datasets.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _deformable_detr_train_sizes() -> list[int]:
    return list(range(480, 801, 32))


@dataclass
class SplitConfig:
    """One split given explicitly (overrides `DataConfig.root` for that split).

    annotations: path of a COCO instances json.
    images: folder the json's `file_name`s are relative to. When left empty and the json
    sits at `<root>/annotations/instances_<split>.json`, `<root>/<split>/` is used.
    """

    annotations: str | None = None
    images: str | None = None


@dataclass
class TransformConfig:
    """Augmentation and resizing scales, in pixels of the shorter / longer image side.

    Training (Deformable DETR): horizontal flip with `flip_probability`, then with
    probability `1 - crop_probability` a resize of the shorter side to one of
    `train_min_sizes` (longer side at most `train_max_size`), otherwise a resize to one
    of `crop_resize_sizes`, a random crop with sides in [crop_min_size, crop_max_size],
    and the same multi-scale resize. Evaluation: shorter side `eval_min_size`, longer
    side at most `eval_max_size`. Finally normalization with `mean` / `std`.
    """

    train_min_sizes: list[int] = field(default_factory=_deformable_detr_train_sizes)
    train_max_size: int = 1333
    flip_probability: float = 0.5
    crop_probability: float = 0.5
    crop_resize_sizes: list[int] = field(default_factory=lambda: [400, 500, 600])
    crop_min_size: int = 384
    crop_max_size: int = 600
    eval_min_size: int = 800
    eval_max_size: int = 1333
    mean: list[float] = field(default_factory=lambda: list(IMAGENET_MEAN))
    std: list[float] = field(default_factory=lambda: list(IMAGENET_STD))

    def scaled_to(self, eval_min_size: int) -> TransformConfig:
        """The same recipe with every size scaled by `eval_min_size / self.eval_min_size`.

        For small images: `TransformConfig().scaled_to(256)` trains on shorter sides
        154..256 and evaluates at 256, keeping the recipe's proportions.
        """
        factor = eval_min_size / self.eval_min_size

        def scale(value: int) -> int:
            return max(1, round(value * factor))

        return replace(
            self,
            train_min_sizes=sorted({scale(s) for s in self.train_min_sizes}),
            train_max_size=scale(self.train_max_size),
            crop_resize_sizes=sorted({scale(s) for s in self.crop_resize_sizes}),
            crop_min_size=scale(self.crop_min_size),
            crop_max_size=scale(self.crop_max_size),
            eval_min_size=eval_min_size,
            eval_max_size=scale(self.eval_max_size),
        )


@dataclass
class SyntheticConfig:
    """The built-in synthetic shapes dataset, used when no other data is configured.

    directory: where it is generated once and cached; None means
    `$MSDETR_CACHE/synthetic-...` (default cache `~/.cache/msdetr`).
    layout: "standard" (1-12 shapes of 4-45% of the shorter side, some empty and some
    crowded images), "simple" (1-4 shapes of 10-40%) or "coloured" (as "simple", one colour
    per class on grey backgrounds: the 5-minute CPU demo's data).
    """

    train: int = 1000
    val: int = 200
    size: int = 256
    seed: int = 0
    directory: str | None = None
    layout: Literal["standard", "simple", "coloured"] = "standard"


@dataclass
class DataConfig:
    """Where the data is and how it is read.

    root: a dataset folder in COCO layout (`annotations/instances_<split>.json` and one
    image folder `<split>/` per split). `train_split` / `val_split` name the splits,
    either exactly or by prefix ("train" finds `train2017`).
    train / val: explicit json + image folder per split, overriding `root`.
    With neither, the synthetic dataset (`synthetic`) is used.
    raw_category_ids: use COCO category ids themselves as class indices (91 classes for
    COCO) so official checkpoints and their evaluation work unchanged; otherwise ids of
    any value and order map to contiguous indices 0..K-1 (sorted by id).
    num_classes: None takes it from the annotation file (K, or max id + 1 when raw).
    on_bad_image: "error" stops with the file name; "skip" replaces the image by the next
    readable one and counts it in the log.
    on_bad_box: "clip" clips boxes to the image and drops those with no area left (counted
    in the log); "error" stops and names the annotation id.
    masks: also load instance masks (polygons or RLE) as `target["masks"]`.
    """

    root: str | None = None
    train_split: str = "train"
    val_split: str = "val"
    train: SplitConfig = field(default_factory=SplitConfig)
    val: SplitConfig = field(default_factory=SplitConfig)
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    raw_category_ids: bool = False
    num_classes: int | None = None
    transforms: TransformConfig = field(default_factory=TransformConfig)
    masks: bool = False
    on_bad_image: Literal["error", "skip"] = "error"
    on_bad_box: Literal["clip", "error"] = "clip"
    num_workers: int = 2
