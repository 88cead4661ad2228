"""Checks of the image files a COCO json refers to: present, decodable, right size."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from msdetr.data.annotation_table import ImageTable
from msdetr.data.doctor.record_checks import image_where
from msdetr.data.doctor.report import Issue, error
from msdetr.data.image_io import ImageReadError, read_header


def _check_one(path: Path, where: str, json_width: float, json_height: float, decode: bool) -> Issue | None:
    if not path.is_file():
        return error("missing_image", where, f"file not found at {path}")
    try:
        header = read_header(path, decode=decode)
    except ImageReadError as err:
        return error("unreadable_image", where, f"{err}; replace or remove the file")
    if not (np.isfinite(json_width) and np.isfinite(json_height)):
        return None
    if (header.width, header.height) == (int(json_width), int(json_height)):
        return None
    message = (f"the file is {header.width}x{header.height} (width x height, as displayed) but the json "
               f"says {json_width:g}x{json_height:g}")
    if (header.width, header.height) == (int(json_height), int(json_width)) and header.orientation != 1:
        message += (f"; the file has EXIF orientation {header.orientation} (rotated), which the "
                    f"annotation tool probably ignored: boxes may be rotated too")
    return error("size_mismatch", where, message + "; fix 'width'/'height' (and the boxes) in the json")


def check_image_files(images: ImageTable, image_dir: Path, decode: bool = True,
                      workers: int | None = None) -> list[Issue]:
    """One issue per missing, unreadable or wrongly sized image, in json order.

    decode: decode every pixel (catches truncated files); False reads headers only."""
    if not image_dir.is_dir():
        return [error("missing_image_dir", str(image_dir), "image folder not found; pass the folder the "
                      "json's file_names are relative to")] if len(images) else []
    jobs = [
        (image_dir / name, image_where(images, i), images.widths[i], images.heights[i], decode)
        for i, name in enumerate(images.file_names)
        if name is not None
    ]
    with ThreadPoolExecutor(max_workers=workers or min(8, os.cpu_count() or 1)) as pool:
        results = list(pool.map(lambda job: _check_one(*job), jobs))
    return [issue for issue in results if issue is not None]
