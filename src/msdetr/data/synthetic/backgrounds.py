"""Textured and noisy backgrounds for the synthetic dataset (vectorized numpy + PIL)."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw


def random_color(rng: np.random.Generator, low: float = 0.0, high: float = 255.0) -> np.ndarray:
    """(3,) float32 RGB."""
    return rng.uniform(low, high, size=3).astype(np.float32)


def _blobs(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    cells = rng.integers(2, 9, size=2)
    small = rng.uniform(0, 255, size=(cells[0], cells[1], 3)).astype(np.uint8)
    return np.asarray(Image.fromarray(small).resize((width, height), Image.BILINEAR))


def _soft(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A gentle colour gradient: one random colour varied by up to +-40 over 2-3 cells."""
    cells = rng.integers(2, 4, size=2)
    base = random_color(rng, 40, 215)
    small = np.clip(base + rng.uniform(-40, 40, size=(cells[0], cells[1], 3)), 0, 255).astype(np.uint8)
    return np.asarray(Image.fromarray(small).resize((width, height), Image.BILINEAR))


def _grey(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A gentle grey gradient: one grey level in 70-180 varied by up to +-25 over 2-3 cells."""
    cells = rng.integers(2, 4, size=2)
    level = rng.uniform(70, 180) + rng.uniform(-25, 25, size=(cells[0], cells[1], 1))
    small = np.clip(np.repeat(level, 3, axis=2), 0, 255).astype(np.uint8)
    return np.asarray(Image.fromarray(small).resize((width, height), Image.BILINEAR))


def _mix(rng: np.random.Generator, weight: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 blend of two random colours by `weight` (H, W) in [0, 1]
    (through a 256-entry colour table, much faster than blending in float)."""
    first, second = random_color(rng), random_color(rng)
    table = (first + np.linspace(0, 1, 256, dtype=np.float32)[:, None] * (second - first)).astype(np.uint8)
    return table[np.rint(weight * 255).astype(np.uint8)]


def _coordinates(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(height, 1) row and (1, width) column coordinates, broadcasting to the image."""
    return (np.arange(height, dtype=np.float32)[:, None], np.arange(width, dtype=np.float32)[None, :])


def _stripes(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    y, x = _coordinates(height, width)
    angle, period = rng.uniform(0, np.pi), rng.uniform(6, 40)
    phase = (x * np.cos(angle) + y * np.sin(angle)) * (2 * np.pi / period)
    return _mix(rng, 0.5 + 0.5 * np.sin(phase))


def _checker(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    y, x = _coordinates(height, width)
    cell = rng.uniform(8, 48)
    weight = ((np.floor(x / cell) + np.floor(y / cell)) % 2).astype(np.float32)
    return _mix(rng, 0.35 * weight)


def _grain(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    base = random_color(rng, 30, 225)
    return base + rng.normal(0, rng.uniform(15, 40), size=(height, width, 1)).astype(np.float32)


BACKGROUNDS = (_blobs, _stripes, _checker, _grain)


def random_background(
    rng: np.random.Generator, height: int, width: int, plain: bool = False, grey: bool = False
) -> np.ndarray:
    """(height, width, 3) uint8: one of smooth colour blobs, stripes, a low-contrast
    checkerboard or grainy flat colour, with 0-5 thin distractor lines on top;
    `plain`: a gentle colour gradient only, no lines; `grey`: a gentle grey gradient."""
    if grey:
        return _grey(rng, height, width)
    if plain:
        return _soft(rng, height, width)
    kind = BACKGROUNDS[rng.integers(len(BACKGROUNDS))]
    pixels = kind(rng, height, width)
    if pixels.dtype != np.uint8:
        pixels = np.clip(pixels, 0, 255).astype(np.uint8)
    lines = int(rng.integers(0, 6))
    if lines:
        image = Image.fromarray(pixels)
        draw = ImageDraw.Draw(image)
        ends = rng.uniform(0, 1, size=(lines, 4)) * np.array([width, height, width, height])
        colors = rng.integers(0, 256, size=(lines, 3))
        thickness = rng.integers(1, 4, size=lines)
        for end, color, line_width in zip(ends, colors, thickness):
            fill = tuple(int(c) for c in color)
            draw.line([tuple(end[:2]), tuple(end[2:])], fill=fill, width=int(line_width))
        pixels = np.asarray(image)
    return pixels
