"""Turn a `DataConfig` into datasets (the one place that reads data settings)."""

from __future__ import annotations

from typing import Literal

from msdetr.config.data import DataConfig, SplitConfig
from msdetr.data.categories import CategoryMap
from msdetr.data.coco_dataset import CocoDataset
from msdetr.data.layout import SplitSource, find_split, find_splits, source_from_json
from msdetr.data.synthetic import ensure_synthetic_dataset
from msdetr.data.transform_recipes import build_eval_transforms, build_train_transforms
from msdetr.errors import MsdetrError

Split = Literal["train", "val"]


def resolve_split(config: DataConfig, split: Split) -> SplitSource:
    """Where `split` comes from: explicit json, else `root` in COCO layout, else the
    synthetic dataset (generated on first use)."""
    explicit: SplitConfig = getattr(config, split)
    if explicit.annotations:
        return source_from_json(explicit.annotations, explicit.images)
    if explicit.images:
        raise MsdetrError(f"data.{split}.images is set without data.{split}.annotations; set both")
    name = config.train_split if split == "train" else config.val_split
    if config.root:
        try:
            return find_split(config.root, name)
        except MsdetrError as err:
            hint = _split_settings_hint(config)
            if hint is None:
                raise
            raise MsdetrError(f"{err}: {hint}") from None
    synth = config.synthetic
    root = ensure_synthetic_dataset(synth.directory, train=synth.train, val=synth.val, size=synth.size,
                                    seed=synth.seed, layout=synth.layout)
    return find_split(root, split)


def _split_settings_hint(config: DataConfig) -> str | None:
    """When `data.root` has splits but not the configured names (a preset's `train2017` on a
    `msdetr data synth` folder with `train` and `val`), the `--set` options that fix it."""
    try:
        found = [s.name for s in find_splits(config.root)]
    except MsdetrError:
        return None
    sets = []
    for split in ("train", "val"):
        key = f"{split}_split"
        try:
            find_split(config.root, getattr(config, key))
            continue
        except MsdetrError:
            pass
        matches = [name for name in found if name == split] or [name for name in found if split in name]
        if len(matches) != 1:
            return None
        sets.append(f"--set data.{key}={matches[0]}")
    return f"add {' '.join(sets)}" if sets else None


def build_dataset(config: DataConfig, split: Split, category_map: CategoryMap | None = None) -> CocoDataset:
    """The dataset of `split` with the training or evaluation transforms.

    Pass the training set's `category_map` when building validation so both use the same
    class indices (`build_datasets` does this)."""
    source = resolve_split(config, split)
    transforms = build_train_transforms(config.transforms) if split == "train" else \
        build_eval_transforms(config.transforms)
    return CocoDataset(
        source.annotations,
        source.images,
        transforms,
        category_map=category_map,
        raw_category_ids=config.raw_category_ids,
        num_classes=config.num_classes,
        masks=config.masks,
        on_bad_image=config.on_bad_image,
        on_bad_box=config.on_bad_box,
    )


def build_datasets(config: DataConfig) -> tuple[CocoDataset, CocoDataset]:
    """(train, val) sharing the training set's category mapping."""
    train = build_dataset(config, "train")
    return train, build_dataset(config, "val", category_map=train.category_map)
