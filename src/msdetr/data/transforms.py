"""Joint transforms of an image and its target (boxes, masks and per-object fields).

Each transform is called as `transform(image, target, generator)` and returns
`(image, target)`:

- image: `tv_tensors.Image` (3, H, W), uint8 until `Normalize` makes it float32.
- target: dict with per-object fields (`PER_OBJECT_KEYS`) for n objects:
  `boxes` `tv_tensors.BoundingBoxes` (n, 4) XYXY in pixels of the current image,
  `labels` (n,) int64, `area` (n,) float32 (pixels of the current image),
  `iscrowd` (n,) int64, optionally `masks` `tv_tensors.Mask` (n, H, W) uint8;
  other keys (`image_id`, `orig_size`) pass through unchanged.
- generator: a `torch.Generator` for all random choices (None: torch's global one),
  so one seed reproduces one sample's augmentation wherever it is computed.

Geometry is done by torchvision's transforms v2 functionals, which dispatch on the
tv_tensor type (images bilinear with antialias, masks nearest, boxes exactly).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as F

PER_OBJECT_KEYS = ("boxes", "labels", "area", "iscrowd", "masks")


def _uniform(generator: torch.Generator | None) -> float:
    return float(torch.rand((), generator=generator))


def _integer(low: int, high: int, generator: torch.Generator | None) -> int:
    """Uniform integer in [low, high], both included."""
    return int(torch.randint(low, high + 1, (), generator=generator))


def _pick(options: Sequence[int], generator: torch.Generator | None) -> int:
    return options[_integer(0, len(options) - 1, generator)]


def _canvas(image: torch.Tensor) -> tuple[int, int]:
    return int(image.shape[-2]), int(image.shape[-1])


def keep_objects(target: dict, keep: torch.Tensor) -> dict:
    """The target with only the objects where `keep` (n,) bool is True."""
    target = dict(target)
    for key in PER_OBJECT_KEYS:
        if key in target:
            value = target[key]
            kept = value[keep]
            is_tv_tensor = isinstance(value, tv_tensors.TVTensor)
            target[key] = tv_tensors.wrap(kept, like=value) if is_tv_tensor else kept
    return target


def clamp_boxes(boxes: tv_tensors.BoundingBoxes) -> tv_tensors.BoundingBoxes:
    """XYXY boxes clamped to their canvas (the same on every torchvision version)."""
    height, width = boxes.canvas_size
    plain = boxes.as_subclass(torch.Tensor)
    upper = plain.new_tensor([width, height, width, height])
    clamped = torch.minimum(plain.clamp(min=0), upper)
    return tv_tensors.wrap(clamped, like=boxes)


def shorter_side_size(height: int, width: int, min_size: int, max_size: int | None) -> tuple[int, int]:
    """Output (height, width) with the shorter side `min_size`, reduced so the longer
    side stays within `max_size` (Deformable DETR's rule, integer truncation included)."""
    short, long = min(height, width), max(height, width)
    if max_size is not None and long / short * min_size > max_size:
        min_size = int(round(max_size * short / long))
    if short == min_size:
        return height, width
    if width < height:
        return max(1, int(min_size * height / width)), min_size
    return min_size, max(1, int(min_size * width / height))


def resize(image: tv_tensors.Image, target: dict, size: tuple[int, int]) -> tuple[tv_tensors.Image, dict]:
    """Resize the image, boxes, masks and areas to `size` (height, width)."""
    height, width = _canvas(image)
    if (height, width) == tuple(size):
        return image, target
    image = F.resize(image, list(size), antialias=True)
    target = dict(target)
    target["boxes"] = F.resize(target["boxes"], list(size))
    target["area"] = target["area"] * (size[0] * size[1] / (height * width))
    if "masks" in target:
        target["masks"] = F.resize(target["masks"], list(size))
    return image, target


def crop(image: tv_tensors.Image, target: dict, top: int, left: int, height: int, width: int):
    """Crop image, boxes and masks; boxes are clipped, and objects whose box has no area
    left are removed. `area` becomes the clipped box area (as in DETR)."""
    image = F.crop(image, top, left, height, width)
    target = dict(target)
    boxes = clamp_boxes(F.crop(target["boxes"], top, left, height, width))
    target["boxes"] = boxes
    sides = boxes[:, 2:] - boxes[:, :2]
    target["area"] = (sides[:, 0] * sides[:, 1]).as_subclass(torch.Tensor).to(torch.float32)
    if "masks" in target:
        target["masks"] = F.crop(target["masks"], top, left, height, width)
    keep = (sides > 0).all(dim=1).as_subclass(torch.Tensor)
    return image, keep_objects(target, keep)


class Compose:
    """Apply transforms in order."""

    def __init__(self, transforms: Sequence):
        self.transforms = list(transforms)

    def __call__(self, image, target, generator=None):
        for transform in self.transforms:
            image, target = transform(image, target, generator)
        return image, target

    def __repr__(self) -> str:
        inner = ", ".join(repr(t) for t in self.transforms)
        return f"Compose([{inner}])"


class RandomHorizontalFlip:
    """Mirror left-right with probability `p`."""

    def __init__(self, p: float = 0.5):
        self.p = p

    def __call__(self, image, target, generator=None):
        if _uniform(generator) >= self.p:
            return image, target
        target = dict(target)
        target["boxes"] = F.horizontal_flip(target["boxes"])
        if "masks" in target:
            target["masks"] = F.horizontal_flip(target["masks"])
        return F.horizontal_flip(image), target

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


class RandomResize:
    """Resize the shorter side to a size drawn from `min_sizes`, the longer side at
    most `max_size` (None: unlimited). One size = deterministic resize."""

    def __init__(self, min_sizes: Sequence[int], max_size: int | None = None):
        if not min_sizes:
            raise ValueError("RandomResize needs at least one size")
        self.min_sizes = [int(s) for s in min_sizes]
        self.max_size = max_size

    def __call__(self, image, target, generator=None):
        min_size = _pick(self.min_sizes, generator) if len(self.min_sizes) > 1 else self.min_sizes[0]
        size = shorter_side_size(*_canvas(image), min_size, self.max_size)
        return resize(image, target, size)

    def __repr__(self) -> str:
        return f"RandomResize(min_sizes={self.min_sizes}, max_size={self.max_size})"


class RandomSizeCrop:
    """Crop a random window whose height and width are drawn in
    [min_size, max_size] (limited to the image), at a random position."""

    def __init__(self, min_size: int, max_size: int):
        self.min_size, self.max_size = int(min_size), int(max_size)

    def __call__(self, image, target, generator=None):
        height, width = _canvas(image)
        max_w, max_h = min(width, self.max_size), min(height, self.max_size)
        crop_w = _integer(min(self.min_size, max_w), max_w, generator)
        crop_h = _integer(min(self.min_size, max_h), max_h, generator)
        top = _integer(0, height - crop_h, generator)
        left = _integer(0, width - crop_w, generator)
        return crop(image, target, top, left, crop_h, crop_w)

    def __repr__(self) -> str:
        return f"RandomSizeCrop({self.min_size}, {self.max_size})"


class RandomChoice:
    """Apply `first` with probability `p`, otherwise `second`."""

    def __init__(self, first, second, p: float = 0.5):
        self.first, self.second, self.p = first, second, p

    def __call__(self, image, target, generator=None):
        chosen = self.first if _uniform(generator) < self.p else self.second
        return chosen(image, target, generator)

    def __repr__(self) -> str:
        return f"RandomChoice({self.first!r}, {self.second!r}, p={self.p})"


class Normalize:
    """uint8 image -> float32 (x / 255 - mean) / std per channel, contiguous (3, H, W)."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        self.mean, self.std = [float(m) for m in mean], [float(s) for s in std]
        std_t = torch.tensor(self.std)
        self._scale = (1.0 / (255.0 * std_t)).view(3, 1, 1)
        self._shift = (torch.tensor(self.mean) / std_t).view(3, 1, 1)

    def __call__(self, image, target, generator=None):
        if image.dtype != torch.uint8:
            raise TypeError(f"Normalize expects a uint8 image, got {image.dtype}")
        pixels = image.as_subclass(torch.Tensor).contiguous().to(torch.float32)
        return tv_tensors.Image(pixels.mul_(self._scale).sub_(self._shift)), target

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean}, std={self.std})"
