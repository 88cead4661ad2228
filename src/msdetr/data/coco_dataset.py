"""A COCO-format detection (and instance mask) dataset."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.ops import box_convert

from msdetr.config.data import IMAGENET_MEAN, IMAGENET_STD
from msdetr.data.annotation_table import ImageTable
from msdetr.data.categories import CategoryMap
from msdetr.data.coco_json import load_coco_json
from msdetr.data.coco_objects import build_image_objects, check_images
from msdetr.data.image_io import ImageReadError, load_rgb
from msdetr.data.masks import segmentations_to_masks
from msdetr.data.transforms import Normalize, clamp_boxes
from msdetr.errors import MsdetrError

logger = logging.getLogger("msdetr.data")


class CocoDataset(Dataset):
    """Images and targets from a COCO instances json and its image folder.

    `dataset[i]` (or `dataset[(i, seed)]`, which draws the augmentation from a generator
    seeded with `seed`; see `msdetr.data.loader`) returns `(image, target)`:

    - image: float32 (3, H, W), normalized (ImageNet statistics unless the transforms say
      otherwise), after transforms.
    - target: `boxes` (n, 4) float32 normalized (cx, cy, w, h) relative to the (H, W)
      image; `labels` (n,) int64 in [0, num_classes); `image_id` int; `orig_size` (2,)
      int64 (h, w) of the file; `size` (2,) int64 (H, W); `area` (n,) float32 in pixels of
      the transformed image; `iscrowd` (n,) int64 (zeros: crowd objects are left out of
      training targets and stay in the json for evaluation); `masks` (n, H, W) bool when
      `masks=True`.

    Args:
        annotation_file: COCO instances json. image_dir: folder of its `file_name`s.
        transforms: joint transform (`msdetr.data.transforms`), None = normalize only.
        category_map: reuse another split's mapping (validation uses training's);
            otherwise built from this file with `raw_category_ids` / `num_classes`.
        on_bad_image: "error" (stop, naming the file) or "skip" (use the next readable
            image instead and count it in the log).
        on_bad_box: "clip" or "error", see `msdetr.data.coco_objects`.
    """

    accepts_sample_seeds = True  # dataset[(index, seed)], see msdetr.data.loader

    def __init__(
        self,
        annotation_file: str | Path,
        image_dir: str | Path,
        transforms=None,
        *,
        category_map: CategoryMap | None = None,
        raw_category_ids: bool = False,
        num_classes: int | None = None,
        masks: bool = False,
        on_bad_image: str = "error",
        on_bad_box: str = "clip",
    ):
        if on_bad_image not in ("error", "skip"):
            raise MsdetrError(f"data.on_bad_image: must be 'error' or 'skip', got {on_bad_image!r}")
        self.annotation_file = Path(annotation_file)
        self.image_dir = Path(image_dir)
        source = str(self.annotation_file)
        if not self.image_dir.is_dir():
            raise MsdetrError(f"{self.image_dir}: image folder not found (images of {source})")
        coco = load_coco_json(self.annotation_file)
        own_map = CategoryMap.from_categories(coco["categories"], raw_category_ids, num_classes, source)
        if category_map is not None:
            foreign = sorted(set(own_map.category_id_to_label) - set(category_map.category_id_to_label))
            if foreign:
                raise MsdetrError(f"{source}: category ids {foreign} are not among the training "
                                  f"categories; use the same categories in every split")
        self.category_map = category_map or own_map
        images = ImageTable.from_records(coco["images"])
        check_images(images, source)
        self._objects = build_image_objects(coco, images, self.category_map, source, on_bad_box, masks)
        self._image_ids = images.ids
        self._file_names = list(images.file_names)
        self._json_sizes = np.stack([images.heights, images.widths], axis=1).astype(np.int64)
        self.masks = masks
        self.transforms = transforms if transforms is not None else Normalize(IMAGENET_MEAN, IMAGENET_STD)
        self.on_bad_image = on_bad_image
        self._bad_indices: set[int] = set()

    # --- what the model, trainer and evaluator need -------------------------------------
    @property
    def num_classes(self) -> int:
        return self.category_map.num_classes

    @property
    def class_names(self) -> list[str]:
        """Names by class index ("" for indices no category uses)."""
        return self.category_map.class_names

    @property
    def label_to_category_id(self) -> list[int]:
        """Category id of each class index (-1 for unused indices), for evaluation."""
        return self.category_map.label_to_category_id

    @property
    def category_id_to_label(self) -> dict[int, int]:
        return self.category_map.category_id_to_label

    @property
    def image_ids(self) -> list[int]:
        return [int(i) for i in self._image_ids]

    @property
    def objects_per_image(self) -> np.ndarray:
        """(M,) int64: training objects of each image as annotated (crowd and dropped boxes left out),
        before augmentation (crops can only remove objects)."""
        return np.diff(self._objects.offsets)

    @property
    def num_skipped_images(self) -> int:
        """Unreadable images skipped so far in this process (on_bad_image: skip)."""
        return len(self._bad_indices)

    def image_path(self, index: int) -> Path:
        return self.image_dir / self._file_names[index]

    def __len__(self) -> int:
        return len(self._file_names)

    # --- loading -----------------------------------------------------------------------
    def _read(self, index: int) -> np.ndarray:
        """(H, W, 3) uint8 pixels; raises ImageReadError when unusable."""
        pixels = load_rgb(self.image_path(index))
        json_h, json_w = (int(v) for v in self._json_sizes[index])
        height, width = pixels.shape[:2]
        if (height, width) != (json_h, json_w):
            hint = (" (width and height swapped: probably an EXIF rotation the annotation tool ignored)"
                    if (height, width) == (json_w, json_h) else "")
            raise ImageReadError(f"the image is {width}x{height} (width x height) but "
                                 f"{self.annotation_file.name} says {json_w}x{json_h}{hint}")
        return pixels

    def _raw_target(self, index: int, height: int, width: int) -> dict:
        start, stop = self._objects.offsets[index], self._objects.offsets[index + 1]
        boxes = torch.from_numpy(self._objects.boxes[start:stop].copy())
        target = {
            "boxes": tv_tensors.BoundingBoxes(boxes, format="XYXY", canvas_size=(height, width)),
            "labels": torch.from_numpy(self._objects.labels[start:stop].copy()),
            "area": torch.from_numpy(self._objects.area[start:stop].copy()),
            "iscrowd": torch.zeros(stop - start, dtype=torch.int64),
            "image_id": int(self._image_ids[index]),
            "orig_size": torch.tensor([height, width], dtype=torch.int64),
        }
        if self.masks:
            masks = segmentations_to_masks(self._objects.segmentations[start:stop], height, width)
            target["masks"] = tv_tensors.Mask(torch.from_numpy(masks))
        return target

    def _readable_index(self, index: int) -> tuple[int, np.ndarray]:
        """The first readable image at or after `index` (wrapping), per on_bad_image."""
        for step in range(len(self)):
            candidate = (index + step) % len(self)
            if candidate in self._bad_indices:
                continue
            try:
                return candidate, self._read(candidate)
            except ImageReadError as err:
                path = self.image_path(candidate)
                if self.on_bad_image == "error":
                    raise MsdetrError(f"{path}: {err}; fix or remove the image, or set "
                                      f"on_bad_image: skip") from err
                self._bad_indices.add(candidate)
                logger.warning("%s: %s; skipped (on_bad_image: skip), %d image(s) skipped so far",
                               path, err, len(self._bad_indices))
        raise MsdetrError(f"{self.image_dir}: none of the {len(self)} images can be read")

    def __getitem__(self, key: int | tuple[int, int]):
        index, seed = key if isinstance(key, tuple) else (key, None)
        generator = torch.Generator().manual_seed(int(seed)) if seed is not None else None
        index, pixels = self._readable_index(int(index))
        height, width = pixels.shape[:2]
        image = tv_tensors.Image(torch.from_numpy(pixels).permute(2, 0, 1))
        image, target = self.transforms(image, self._raw_target(index, height, width), generator)
        return finalize(image, target)


def finalize(image: torch.Tensor, target: dict) -> tuple[torch.Tensor, dict]:
    """Plain tensors out; pixel XYXY boxes -> normalized (cx, cy, w, h); `size` added."""
    height, width = int(image.shape[-2]), int(image.shape[-1])
    boxes = clamp_boxes(target["boxes"]).as_subclass(torch.Tensor)
    scale = boxes.new_tensor([width, height, width, height])
    out = dict(target)
    out["boxes"] = box_convert(boxes, "xyxy", "cxcywh").div(scale).to(torch.float32)
    out["size"] = torch.tensor([height, width], dtype=torch.int64)
    out["area"] = target["area"].as_subclass(torch.Tensor).to(torch.float32)
    if "masks" in target:
        out["masks"] = target["masks"].as_subclass(torch.Tensor).bool()
    return image.as_subclass(torch.Tensor), out
