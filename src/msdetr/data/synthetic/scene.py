"""Random layout of shapes in one synthetic image.

Two layouts (`LAYOUTS`):

``standard``: about 7% of images are empty, 6% are crowded (12-24 small shapes), the
rest hold 1 + Poisson(3) shapes (at most 12). Sizes (radius) are log-uniform from 4% to
45% of the shorter side (to 10% in crowded images).

``simple`` (the 5-minute CPU demo): 1 + Poisson(1) shapes (at most 4), never empty or
crowded, radius log-uniform from 10% to 40% of the shorter side, on smooth colour
gradients without distractor lines or pixel noise: an easy first task for a small
model trained from scratch in a few hundred steps.

``coloured`` (the 5-minute CPU demo): the ``simple`` layout with one colour per class
(hues 60 degrees apart, brightness and saturation jittered) on grey gradients, so that a
class can be told by its colour as well as by its outline: the easiest multi-class task,
for a model trained from scratch in a few hundred steps.

In both, shapes are drawn large to small and may overlap, but a shape is never placed
where it would hide more than half of an earlier shape's box. Each shape's colour
stands out from the background under it (RGB distance >= 60).
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np

from msdetr.data.synthetic.shapes import SHAPE_NAMES, shape_polygon

MAX_HIDDEN_FRACTION = 0.5
MIN_CONTRAST = 60.0
_PLACEMENT_TRIES = 12


@dataclass(frozen=True)
class SceneLayout:
    """How many shapes an image holds and how large they are (radius as a fraction of
    the shorter side)."""

    empty_fraction: float
    crowded_fraction: float
    mean_extra: float  # shapes in a normal image: 1 + Poisson(mean_extra), at most max_count
    max_count: int
    min_radius: float
    max_radius: float
    plain_background: bool = False  # a gentle colour gradient, no distractor lines
    noisy_fraction: float = 0.5  # images that get pixel noise (sigma 3-10)
    class_colours: bool = False  # one hue per class on a grey background


LAYOUTS = {
    "standard": SceneLayout(0.07, 0.06, 3.0, 12, 0.04, 0.45),
    "simple": SceneLayout(0.0, 0.0, 1.0, 4, 0.10, 0.40, plain_background=True, noisy_fraction=0.0),
    "coloured": SceneLayout(
        0.0, 0.0, 1.0, 4, 0.10, 0.40, plain_background=True, noisy_fraction=0.0, class_colours=True
    ),
}


@dataclass
class SceneObject:
    """One shape: class index into SHAPE_NAMES, (V, 2) pixel polygon, RGB colour."""

    category: int
    polygon: np.ndarray
    color: tuple[int, int, int]


def _count(rng: np.random.Generator, layout: SceneLayout) -> tuple[int, bool]:
    """(number of shapes, crowded?)."""
    draw = rng.uniform()
    if draw < layout.empty_fraction:
        return 0, False
    if draw < layout.empty_fraction + layout.crowded_fraction:
        return int(rng.integers(12, 25)), True
    return min(layout.max_count, 1 + int(rng.poisson(layout.mean_extra))), False


def _color(rng: np.random.Generator, under: np.ndarray) -> tuple[int, int, int]:
    """A saturated colour far enough from `under` (3,) (mean background colour)."""
    rgb = np.zeros(3)
    for _ in range(10):
        hue, saturation, value = rng.uniform(), rng.uniform(0.45, 1.0), rng.uniform(0.35, 1.0)
        rgb = 255.0 * np.array(colorsys.hsv_to_rgb(hue, saturation, value))
        if np.linalg.norm(rgb - under) >= MIN_CONTRAST:
            break
    else:
        rgb = np.where(under > 127, 0.0, 255.0)  # fall back to the opposite corner of the cube
    return tuple(int(round(c)) for c in rgb)


def _class_colour(rng: np.random.Generator, category: int, classes: int) -> tuple[int, int, int]:
    """The colour of class `category` of `classes`: its own hue (+-8 degrees), saturation
    0.75-1, value 0.8-1 (far from any grey background)."""
    hue = (category / classes + rng.uniform(-8, 8) / 360.0) % 1.0
    rgb = 255.0 * np.array(colorsys.hsv_to_rgb(hue, rng.uniform(0.75, 1.0), rng.uniform(0.8, 1.0)))
    return tuple(int(round(c)) for c in rgb)


def _hides_too_much(box: np.ndarray, boxes: np.ndarray) -> bool:
    """Would a shape with `box` (4,) x0y0x1y1 cover more than half of any of `boxes` (n, 4)?"""
    if boxes.size == 0:
        return False
    sides = np.clip(np.minimum(box[2:], boxes[:, 2:]) - np.maximum(box[:2], boxes[:, :2]), 0, None)
    covered = sides.prod(axis=1) / np.maximum((boxes[:, 2:] - boxes[:, :2]).prod(axis=1), 1e-6)
    return bool((covered > MAX_HIDDEN_FRACTION).any())


def sample_scene(rng: np.random.Generator, background: np.ndarray, layout: str = "standard") -> list[SceneObject]:
    """Shapes for one (H, W, 3) uint8 background, in drawing order (later on top)."""
    height, width = background.shape[:2]
    params = LAYOUTS[layout]
    count, crowded = _count(rng, params)
    short = min(height, width)
    min_radius = max(4.0, params.min_radius * short)
    max_radius = (0.1 if crowded else params.max_radius) * short
    categories = rng.integers(len(SHAPE_NAMES), size=count)
    radii = np.exp(rng.uniform(np.log(min_radius), np.log(max_radius), size=count))
    order = np.argsort(-radii, kind="stable")  # large shapes first, small ones on top
    objects: list[SceneObject] = []
    boxes = np.zeros((0, 4))
    for category, radius in zip(categories[order].tolist(), radii[order].tolist()):
        for _ in range(_PLACEMENT_TRIES):
            outline = shape_polygon(SHAPE_NAMES[category], radius, rng.uniform(0, 2 * np.pi))
            low, high = outline.min(axis=0), outline.max(axis=0)
            room = np.array([width, height]) - (high - low)
            if (room <= 1).any():
                radius *= 0.8
                continue
            polygon = outline - low + rng.uniform(0, 1, size=2) * (room - 1) + 0.5
            box = np.concatenate([polygon.min(axis=0), polygon.max(axis=0)])
            if _hides_too_much(box, boxes):
                continue
            x0, y0, x1, y1 = box.astype(int)
            under = background[y0 : y1 + 1, x0 : x1 + 1].reshape(-1, 3).mean(axis=0)
            if params.class_colours:
                colour = _class_colour(rng, category, len(SHAPE_NAMES))
            else:
                colour = _color(rng, under)
            objects.append(SceneObject(category, polygon, colour))
            boxes = np.concatenate([boxes, box[None]])
            break
    return objects
