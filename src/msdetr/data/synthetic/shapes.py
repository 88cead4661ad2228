"""Outlines of the synthetic shape classes, as polygons."""

from __future__ import annotations

import numpy as np

SHAPE_NAMES = ("circle", "square", "triangle", "star", "hexagon", "cross")


def _regular(vertices: int, radius: float = 1.0, phase: float = 0.0) -> np.ndarray:
    angles = phase + 2 * np.pi * np.arange(vertices) / vertices
    return radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)


def _star(points: int = 5, inner: float = 0.45) -> np.ndarray:
    outline = _regular(2 * points, phase=-np.pi / 2)
    outline[1::2] *= inner
    return outline


def _cross(arm: float = 0.34) -> np.ndarray:
    """A plus sign: one arm end and inner corner per quarter turn, clockwise."""
    quarter = np.array([[arm, 1.0], [arm, arm], [1.0, arm]])
    turns = [np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]]) for t in
             (0.0, -np.pi / 2, -np.pi, -3 * np.pi / 2)]
    return np.concatenate([quarter @ r.T for r in turns])


# Unit outlines (radius about 1, centred at the origin), one per class.
UNIT_OUTLINES = {
    "circle": _regular(32),
    "square": _regular(4, phase=np.pi / 4),
    "triangle": _regular(3, phase=-np.pi / 2),
    "star": _star(),
    "hexagon": _regular(6),
    "cross": _cross(),
}


def shape_polygon(name: str, radius: float, angle: float) -> np.ndarray:
    """(V, 2) float64 outline of shape `name`, scaled to `radius`, rotated by `angle`
    (radians), centred at the origin."""
    cos, sin = np.cos(angle), np.sin(angle)
    rotation = np.array([[cos, -sin], [sin, cos]])
    return radius * UNIT_OUTLINES[name] @ rotation.T
