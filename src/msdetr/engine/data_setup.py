"""Training and validation loaders for the trainer (datasets come from `msdetr.data.build`).

Training batches: the data layer's `SeededSampler` (order and augmentation seeds depend only
on (seed, epoch, index)), cut into batches by `EpochBatches`, which can start an epoch at
any batch, so a resumed run sees exactly the batches the interrupted one would have.
Validation: each rank takes every world_size-th image, nothing padded or repeated.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader, Sampler

from msdetr.config.data import DataConfig
from msdetr.data.build import build_datasets, resolve_split
from msdetr.data.coco_dataset import CocoDataset
from msdetr.data.collate import collate
from msdetr.data.loader import SeededSampler, seed_worker
from msdetr.engine import distributed
from msdetr.errors import MsdetrError


def prepare_datasets(cfg: DataConfig) -> tuple[CocoDataset, CocoDataset]:
    """(train, val) datasets, val using train's class indices. Under torchrun rank 0 resolves the
    splits first (generating the synthetic dataset if needed) while the other ranks wait."""
    if distributed.current().is_main:
        resolve_split(cfg, "train")
        resolve_split(cfg, "val")
    distributed.barrier()
    return build_datasets(cfg)


def crowded_images_warning(dataset: CocoDataset, num_queries: int) -> str | None:
    """One line when some training images have more objects than the model's one-to-one queries
    (`model.num_queries`): each query predicts one object, so the excess objects of those images
    can never be matched. None when every image fits. Reads the annotation counts only (cheap)."""
    counts = dataset.objects_per_image
    crowded = int((counts > num_queries).sum())
    if crowded == 0:
        return None
    return (
        f"data: {crowded} of {len(counts)} training images in {dataset.annotation_file} have more objects than "
        f"the model's {num_queries} one-to-one queries (model.num_queries; most in one image: {int(counts.max())}); "
        f"their extra objects are never matched: raise model.num_queries above {int(counts.max())} to detect them all"
    )


class EpochBatches(Sampler):
    """Batches of `(index, sample_seed)` for one epoch of a `SeededSampler`, full batches only.

    `set_epoch(epoch, skip)` selects the epoch and the number of batches already done.
    """

    def __init__(self, sampler: SeededSampler, batch_size: int):
        self.sampler, self.batch_size = sampler, batch_size
        self.epoch, self.skip = 0, 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.epoch, self.skip = epoch, skip

    @property
    def batches_per_epoch(self) -> int:
        return len(self.sampler) // self.batch_size

    def __iter__(self) -> Iterator[list]:
        self.sampler.set_epoch(self.epoch)
        items = list(iter(self.sampler))
        for b in range(self.skip, self.batches_per_epoch):
            yield items[b * self.batch_size : (b + 1) * self.batch_size]

    def __len__(self) -> int:
        return self.batches_per_epoch - self.skip


def build_train_loader(dataset, batch_size: int, num_workers: int, seed: int, pin_memory: bool) -> DataLoader:
    """Loader over this rank's share; `loader.batch_sampler.set_epoch(epoch, skip)` each epoch."""
    info = distributed.current()
    sampler = SeededSampler(len(dataset), shuffle=True, seed=seed, num_replicas=info.world_size, rank=info.rank)
    batches = EpochBatches(sampler, batch_size)
    if batches.batches_per_epoch == 0:
        raise MsdetrError(
            f"data: {len(dataset)} training images give no full batch of {batch_size} per "
            f"process ({info.world_size} processes); lower train.batch_size"
        )
    # Its own generator: creating an epoch's iterator must not draw from the global RNG, whose
    # state a checkpoint restores (workers are seeded from it; samples from the sampler's seeds).
    return DataLoader(
        dataset,
        batch_sampler=batches,
        num_workers=num_workers,
        collate_fn=collate,
        worker_init_fn=seed_worker,
        pin_memory=pin_memory,
        persistent_workers=num_workers > 0,
        generator=torch.Generator().manual_seed(seed),
    )


class ShardSampler(Sampler):
    """Every world_size-th index starting at rank, in order (no padding, no repeats)."""

    def __init__(self, size: int, rank: int, world_size: int):
        self.indices = list(range(rank, size, world_size))

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def build_val_loader(dataset, batch_size: int, num_workers: int, pin_memory: bool = False) -> DataLoader:
    info = distributed.current()
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=ShardSampler(len(dataset), info.rank, info.world_size),
        num_workers=num_workers,
        collate_fn=collate,
        pin_memory=pin_memory,
    )


def pin_memory_for(device: torch.device) -> bool:
    return device.type == "cuda"
