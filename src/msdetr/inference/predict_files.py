"""Run a detector over image files in batches: results json, drawings, failures.

Files that cannot be read are reported and skipped; the rest are still processed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from msdetr.data.image_io import ImageReadError, load_rgb
from msdetr.inference.detector import Detector
from msdetr.inference.drawing import draw_detections, save_image
from msdetr.inference.results import detection_records, write_json

RESULTS_FILE = "predictions.json"


@dataclass
class PredictSummary:
    """What `predict_files` did: images processed, detections written, (file, reason)
    for every file that failed, the results json and the drawings."""

    images: int = 0
    detections: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    results_path: Path | None = None
    drawings: list[Path] = field(default_factory=list)


def _drawing_name(path: Path, used: set[str]) -> str:
    name = f"{path.stem}.png"
    index = 2
    while name in used:
        name = f"{path.stem}-{index}.png"
        index += 1
    used.add(name)
    return name


def predict_files(detector: Detector, files: Sequence[Path], out_dir: str | Path, score: float = 0.3,
                  batch_size: int = 4, draw: bool = True,
                  on_progress: Callable[[int], None] | None = None,
                  on_failure: Callable[[str, str], None] | None = None) -> PredictSummary:
    """Detect objects in `files`, write `out_dir/predictions.json` and (with `draw`) one
    PNG per image with boxes, class names and scores (and masks, with a mask head).

    on_progress(n): called after each batch with the number of files it consumed;
    on_failure(file, reason): called for each file that could not be read.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = PredictSummary()
    records: list[dict] = []
    used_names: set[str] = set()
    for start in range(0, len(files), batch_size):
        chunk = files[start : start + batch_size]
        loaded: list[tuple[Path, Tensor]] = []
        for path in chunk:
            try:
                loaded.append((path, torch.from_numpy(load_rgb(path)).permute(2, 0, 1).contiguous()))
            except ImageReadError as err:
                reason = str(err)
                summary.failures.append((str(path), reason))
                if on_failure is not None:
                    on_failure(str(path), reason)
        detections = detector.detect_rgb([rgb for _, rgb in loaded], score) if loaded else []
        for (path, rgb), dets in zip(loaded, detections):
            records.extend(detection_records(summary.images, str(path), dets))
            summary.images += 1
            summary.detections += len(dets)
            if draw:
                drawn = draw_detections(rgb, dets.boxes, dets.labels, dets.names, dets.scores, dets.masks)
                summary.drawings.append(save_image(drawn, out_dir / _drawing_name(path, used_names)))
        if on_progress is not None:
            on_progress(len(chunk))
    summary.results_path = write_json(out_dir / RESULTS_FILE, records)
    return summary
