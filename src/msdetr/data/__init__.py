"""Data: COCO-format datasets, joint transforms, batching, synthetic data, the doctor."""

from msdetr.data.build import build_dataset, build_datasets, resolve_split
from msdetr.data.categories import CategoryMap
from msdetr.data.coco_dataset import CocoDataset
from msdetr.data.collate import Batch, collate, pad_images
from msdetr.data.layout import SplitSource, find_split, find_splits, resolve_sources
from msdetr.data.loader import SeededSampler, build_dataloader
from msdetr.data.synthetic import create_synthetic_dataset, ensure_synthetic_dataset
from msdetr.data.transform_recipes import build_eval_transforms, build_train_transforms

__all__ = [
    "Batch",
    "CategoryMap",
    "CocoDataset",
    "SeededSampler",
    "SplitSource",
    "build_dataloader",
    "build_dataset",
    "build_datasets",
    "build_eval_transforms",
    "build_train_transforms",
    "collate",
    "create_synthetic_dataset",
    "ensure_synthetic_dataset",
    "find_split",
    "find_splits",
    "pad_images",
    "resolve_sources",
    "resolve_split",
]
