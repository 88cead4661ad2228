"""DataLoader with reproducible order and augmentation.

The sampler yields `(index, sample_seed)` pairs; the dataset draws that sample's
augmentation from a generator seeded with `sample_seed` (datasets that only take
integer indices are wrapped by `SampleSeededDataset`). Seeds depend only on
(seed, epoch, index), so batches are identical for any number of workers and for a
run resumed at a given epoch.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from msdetr.data.collate import collate
from msdetr.errors import MsdetrError


def _mix(*values: int) -> int:
    """A well-spread 63-bit seed from several integers."""
    return int(np.random.SeedSequence([int(v) & 0xFFFFFFFFFFFFFFFF for v in values]).generate_state(
        1, dtype=np.uint64)[0] >> np.uint64(1))


class SeededSampler(Sampler):
    """Yields (index, sample_seed) for this rank's share of `dataset_size` samples.

    Order: `DistributedSampler` (one replica when not distributed), shuffled by
    (seed, epoch) when `shuffle`. `set_epoch(e)` picks the epoch; without it, every
    pass over the sampler moves to the next epoch by itself.
    """

    def __init__(self, dataset_size: int, shuffle: bool, seed: int, num_replicas: int = 1, rank: int = 0):
        self.order = DistributedSampler(range(dataset_size), num_replicas=num_replicas, rank=rank,
                                        shuffle=shuffle, seed=seed)
        self.dataset_size, self.seed = dataset_size, seed
        self.epoch, self._epoch_set = 0, False

    def set_epoch(self, epoch: int) -> None:
        self.epoch, self._epoch_set = int(epoch), True

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch = self.epoch
        self.order.set_epoch(epoch)
        generator = torch.Generator().manual_seed(_mix(self.seed, epoch))
        seeds = torch.randint(0, 2**62, (self.dataset_size,), generator=generator).tolist()
        indices = list(iter(self.order))
        if not self._epoch_set:
            self.epoch += 1
        self._epoch_set = False
        return iter([(i, seeds[i]) for i in indices])

    def __len__(self) -> int:
        return len(self.order)


class SampleSeededDataset(Dataset):
    """Adapter for datasets indexed by plain integers (e.g. a `Subset`): item
    `(index, seed)` is `dataset[index]` computed under torch's global RNG seeded with
    `seed` (the RNG state around it is restored)."""

    accepts_sample_seeds = True

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key):
        if not isinstance(key, tuple):
            return self.dataset[key]
        index, seed = key
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self.dataset[index]


def seed_worker(worker_id: int) -> None:
    """worker_init_fn: seed numpy and `random` from the worker's torch seed (which the
    loader's seeded generator determines), for user transforms that use them."""
    worker_seed = torch.initial_seed() % 2**32
    np.random.seed(worker_seed)
    random.seed(worker_seed)


def build_dataloader(
    dataset,
    batch_size: int,
    shuffle: bool,
    num_workers: int = 2,
    seed: int = 0,
    distributed: bool = False,
    drop_last: bool = False,
    pin_memory: bool = False,
) -> DataLoader:
    """A DataLoader yielding `Batch`es, deterministic for a given seed.

    `dataset[(index, seed)]` must draw that sample's randomness from `seed` (CocoDataset
    does); other datasets are wrapped in `SampleSeededDataset`.
    distributed: split the data across ranks of the initialized process group (each rank
    gets len/world_size samples, padded by repetition as DistributedSampler does).
    Call `loader.sampler.set_epoch(epoch)` each epoch to make resumed runs match.
    """
    if batch_size < 1:
        raise MsdetrError(f"batch_size must be at least 1, got {batch_size}")
    if num_workers < 0:
        raise MsdetrError(f"data.num_workers must be >= 0, got {num_workers}")
    num_replicas, rank = 1, 0
    if distributed:
        if not (dist.is_available() and dist.is_initialized()):
            raise MsdetrError("distributed data loading needs an initialized torch.distributed process group")
        num_replicas, rank = dist.get_world_size(), dist.get_rank()
    if not getattr(dataset, "accepts_sample_seeds", False):
        dataset = SampleSeededDataset(dataset)
    sampler = SeededSampler(len(dataset), shuffle=shuffle, seed=seed, num_replicas=num_replicas, rank=rank)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        collate_fn=collate,
        worker_init_fn=seed_worker,
        generator=torch.Generator().manual_seed(seed),
        drop_last=drop_last,
        pin_memory=pin_memory,
        persistent_workers=num_workers > 0,
    )
