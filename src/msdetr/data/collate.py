"""Batch images of different sizes: zero-pad bottom/right, mark padding in a mask."""

from __future__ import annotations

from dataclasses import dataclass

import torch


def _move(value, device, non_blocking: bool):
    return value.to(device, non_blocking=non_blocking) if isinstance(value, torch.Tensor) else value


@dataclass
class Batch:
    """A padded batch of B images.

    images: (B, 3, H, W) float, zero-padded at the bottom and right to the largest
        height H and width W in the batch.
    pixel_mask: (B, H, W) bool, True on padding.
    targets: list of B target dicts (see `CocoDataset`); boxes stay normalized to
        each image's unpadded size `target["size"]`.
    """

    images: torch.Tensor
    pixel_mask: torch.Tensor
    targets: list[dict]

    def to(self, device, non_blocking: bool = False) -> Batch:
        """The batch with every tensor (images, mask, target fields) on `device`."""
        return Batch(
            images=self.images.to(device, non_blocking=non_blocking),
            pixel_mask=self.pixel_mask.to(device, non_blocking=non_blocking),
            targets=[{k: _move(v, device, non_blocking) for k, v in t.items()} for t in self.targets],
        )

    def pin_memory(self) -> Batch:
        """Page-locked copy, called by DataLoader(pin_memory=True)."""
        return Batch(
            images=self.images.pin_memory(),
            pixel_mask=self.pixel_mask.pin_memory(),
            targets=[{k: v.pin_memory() if isinstance(v, torch.Tensor) else v for k, v in t.items()}
                     for t in self.targets],
        )

    def __len__(self) -> int:
        return int(self.images.shape[0])


def pad_images(images: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """List of B (C, h_i, w_i) tensors -> ((B, C, H, W) zero-padded, (B, H, W) bool mask
    True on padding), H and W the largest height and width."""
    if not images:
        raise ValueError("cannot batch zero images")
    channels = images[0].shape[0]
    height = max(int(im.shape[-2]) for im in images)
    width = max(int(im.shape[-1]) for im in images)
    batch = images[0].new_zeros((len(images), channels, height, width))
    mask = torch.ones((len(images), height, width), dtype=torch.bool)
    for i, image in enumerate(images):
        h, w = image.shape[-2:]
        batch[i, :, :h, :w].copy_(image)
        mask[i, :h, :w] = False
    return batch, mask


def collate(samples: list[tuple[torch.Tensor, dict]]) -> Batch:
    """DataLoader collate_fn: list of (image, target) -> Batch."""
    images, targets = zip(*samples)
    batch, mask = pad_images(list(images))
    return Batch(images=batch, pixel_mask=mask, targets=list(targets))
