"""What can be wrong with a COCO box, decided for all boxes at once.

Shared by the dataset (which clips or rejects) and the doctor (which reports), so both
use the same definitions. A box may stick out of the image by `OUTSIDE_TOLERANCE`
pixels (rounding in annotation tools) before it counts as outside.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

OUTSIDE_TOLERANCE = 1.0


@dataclass
class BoxProblems:
    """Boolean flags (N,) for N pixel (x, y, w, h) boxes on images of known size.

    non_finite: a coordinate is NaN or infinite.
    non_positive: width or height <= 0 (finite boxes only).
    outside: a valid box extends more than OUTSIDE_TOLERANCE px past the image border.
    no_overlap: a valid box lies completely outside the image.
    """

    non_finite: np.ndarray
    non_positive: np.ndarray
    outside: np.ndarray
    no_overlap: np.ndarray

    @property
    def invalid(self) -> np.ndarray:
        """Boxes that cannot be used as they are (anything flagged)."""
        return self.non_finite | self.non_positive | self.outside


def find_box_problems(boxes: np.ndarray, widths: np.ndarray, heights: np.ndarray) -> BoxProblems:
    """boxes: (N, 4) pixel (x, y, w, h); widths, heights: (N,) size of each box's image
    (NaN when unknown: such boxes are only checked for finiteness and size)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    x, y, w, h = boxes.T
    with np.errstate(invalid="ignore"):
        non_finite = ~np.isfinite(boxes).all(axis=1)
        non_positive = ~non_finite & ((w <= 0) | (h <= 0))
        valid = ~non_finite & ~non_positive
        known = np.isfinite(widths) & np.isfinite(heights)
        tol = OUTSIDE_TOLERANCE
        sticks_out = (x < -tol) | (y < -tol) | (x + w > widths + tol) | (y + h > heights + tol)
        disjoint = (x >= widths) | (y >= heights) | (x + w <= 0) | (y + h <= 0)
    return BoxProblems(
        non_finite=non_finite,
        non_positive=non_positive,
        outside=valid & known & sticks_out,
        no_overlap=valid & known & disjoint,
    )


def clip_xywh_to_xyxy(boxes: np.ndarray, widths: np.ndarray, heights: np.ndarray) -> np.ndarray:
    """(N, 4) pixel (x, y, w, h) -> (N, 4) pixel (x0, y0, x1, y1) clipped to each image."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    x0 = np.clip(boxes[:, 0], 0, widths)
    y0 = np.clip(boxes[:, 1], 0, heights)
    x1 = np.clip(boxes[:, 0] + boxes[:, 2], 0, widths)
    y1 = np.clip(boxes[:, 1] + boxes[:, 3], 0, heights)
    return np.stack([x0, y0, x1, y1], axis=1)
