"""The Python API: load a checkpoint, detect objects in images.

    import msdetr
    model = msdetr.load("runs/tiny/best.pt")      # ours, or an official MS-DETR checkpoint
    dets = model.predict("image.jpg")             # path, PIL image, numpy array or tensor
    for box, name, score in zip(dets.boxes.tolist(), dets.names, dets.scores.tolist()):
        print(name, round(score, 2), box)         # box: (x0, y0, x1, y1) in pixels

Images go through the same preprocessing as evaluation (the checkpoint's resize and
normalization); only the final one-to-one predictions are used.
"""

from __future__ import annotations

import os

import torch

from msdetr.inference.detector import Detector, ImageDetections
from msdetr.inference.settings import settings_from_model_file

__all__ = ["Detector", "ImageDetections", "load"]


def load(path: str | os.PathLike, device: str | torch.device = "cpu") -> Detector:
    """Load a checkpoint (ours: `best.pt`/`last.pt`/converted; or an official MS-DETR one)
    as a `Detector` on `device` ("cpu" by default, "cuda", "mps", or "auto")."""
    from msdetr.engine.device import resolve_device
    from msdetr.model_io import build_from_file

    model, model_file = build_from_file(path)
    settings = settings_from_model_file(model_file, where=str(path))
    detector = Detector(model, settings, model_file.class_names, model_file.category_ids)
    target = resolve_device(device) if isinstance(device, str) else torch.device(device)
    return detector.to(target)
