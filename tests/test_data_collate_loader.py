"""Padding with pixel masks, Batch.to, and a loader that is deterministic for a seed."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import Subset

from msdetr.config.data import TransformConfig
from msdetr.data import Batch, CocoDataset, SeededSampler, build_dataloader, build_train_transforms, collate
from support.data import annotation, make_dataset


def test_padding_bottom_right_with_mask_true_on_padding():
    a = torch.rand(3, 4, 6)
    b = torch.rand(3, 7, 2)
    batch = collate([(a, {"image_id": 1}), (b, {"image_id": 2})])
    assert batch.images.shape == (2, 3, 7, 6) and batch.pixel_mask.shape == (2, 7, 6)
    assert batch.pixel_mask.dtype == torch.bool
    assert torch.equal(batch.images[0, :, :4, :6], a) and torch.equal(batch.images[1, :, :7, :2], b)
    expected = torch.ones(2, 7, 6, dtype=torch.bool)
    expected[0, :4, :6] = False
    expected[1, :7, :2] = False
    assert torch.equal(batch.pixel_mask, expected)
    assert (batch.images[batch.pixel_mask.unsqueeze(1).expand_as(batch.images)] == 0).all()
    assert [t["image_id"] for t in batch.targets] == [1, 2] and len(batch) == 2


def test_batch_to_moves_every_tensor():
    batch = collate([(torch.rand(3, 2, 2), {"boxes": torch.rand(1, 4), "image_id": 3})])
    moved = batch.to("meta")
    assert isinstance(moved, Batch)
    assert moved.images.device.type == "meta" and moved.pixel_mask.device.type == "meta"
    assert moved.targets[0]["boxes"].device.type == "meta" and moved.targets[0]["image_id"] == 3
    assert batch.images.device.type == "cpu"  # the original is unchanged


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("loader")
    images = [{"id": i + 1, "file_name": f"{i}.png", "width": 40 + 4 * i, "height": 30 + 2 * i}
              for i in range(10)]
    anns = [annotation(i + 1, i + 1, 1, [2, 3, 10 + i, 8]) for i in range(10)]
    path = make_dataset(root, images, anns, [{"id": 1, "name": "x"}])
    return CocoDataset(path, root / "train", build_train_transforms(TransformConfig().scaled_to(32)))


def _epoch(loader):
    return [(b.images.clone(), [t["image_id"] for t in b.targets], [t["boxes"] for t in b.targets])
            for b in loader]


def _same(first, second) -> bool:
    return all(
        torch.equal(a[0], b[0]) and a[1] == b[1] and all(torch.equal(x, y) for x, y in zip(a[2], b[2]))
        for a, b in zip(first, second)
    ) and len(first) == len(second)


def test_same_seed_same_batches_with_any_number_of_workers(small_dataset):
    reference = _epoch(build_dataloader(small_dataset, 3, shuffle=True, num_workers=0, seed=7))
    again = _epoch(build_dataloader(small_dataset, 3, shuffle=True, num_workers=0, seed=7))
    with_workers = _epoch(build_dataloader(small_dataset, 3, shuffle=True, num_workers=2, seed=7))
    assert _same(reference, again)
    assert _same(reference, with_workers)
    other = _epoch(build_dataloader(small_dataset, 3, shuffle=True, num_workers=0, seed=8))
    assert not _same(reference, other)
    assert sorted(i for batch in reference for i in batch[1]) == list(range(1, 11))


def test_plain_index_datasets_are_seeded_too(small_dataset):
    subset = Subset(small_dataset, list(range(6)))
    first = _epoch(build_dataloader(subset, 2, shuffle=True, num_workers=0, seed=3))
    torch.rand(5)  # the global RNG state must not matter
    again = _epoch(build_dataloader(subset, 2, shuffle=True, num_workers=0, seed=3))
    assert _same(first, again)
    assert sorted(i for batch in first for i in batch[1]) == list(range(1, 7))


def test_epochs_differ_and_set_epoch_reproduces_one(small_dataset):
    loader = build_dataloader(small_dataset, 4, shuffle=True, num_workers=0, seed=1)
    first, second = _epoch(loader), _epoch(loader)
    assert not _same(first, second)
    loader.sampler.set_epoch(0)
    assert _same(_epoch(loader), first)
    loader.sampler.set_epoch(1)
    assert _same(_epoch(loader), second)


def test_no_shuffle_keeps_dataset_order(small_dataset):
    loader = build_dataloader(small_dataset, 4, shuffle=False, num_workers=0, seed=0, drop_last=True)
    ids = [i for batch in _epoch(loader) for i in batch[1]]
    assert ids == list(range(1, 9))


def test_ranks_split_the_data_and_share_per_sample_seeds():
    ranks = [list(SeededSampler(10, shuffle=True, seed=3, num_replicas=2, rank=r)) for r in range(2)]
    indices = [i for rank in ranks for i, _ in rank]
    assert sorted(indices) == list(range(10))
    single = dict(SeededSampler(10, shuffle=True, seed=3))
    assert all(single[i] == s for rank in ranks for i, s in rank)
