"""Generate the synthetic dataset once, atomically, and reuse it.

The dataset is written into a temporary sibling folder and renamed into place, with a
marker file holding its parameters written last. A folder without the marker (an
interrupted write) or with other parameters is regenerated; a folder that holds
anything else is never touched.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from msdetr.data.synthetic.generator import GENERATOR_VERSION, SPLITS, write_synthetic_dataset
from msdetr.data.synthetic.scene import LAYOUTS
from msdetr.errors import MsdetrError

MARKER = ".msdetr-synthetic.json"
_OWN_NAMES = {"annotations", MARKER, *SPLITS}


def default_cache_dir() -> Path:
    """`$MSDETR_CACHE`, else `~/.cache/msdetr`."""
    return Path(os.environ.get("MSDETR_CACHE") or Path.home() / ".cache" / "msdetr")


def _parameters(train: int, val: int, size: int, seed: int, layout: str) -> dict:
    parameters = {"generator_version": GENERATOR_VERSION, "train": train, "val": val, "size": size, "seed": seed}
    if layout != "standard":  # datasets cached before layouts existed stay valid
        parameters["layout"] = layout
    return parameters


def read_marker(root: Path) -> dict | None:
    """The parameters a complete synthetic dataset at `root` was made with, else None."""
    try:
        with open(root / MARKER, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _check_arguments(train: int, val: int, size: int, layout: str) -> None:
    if layout not in LAYOUTS:
        raise MsdetrError(f"synthetic dataset: unknown layout {layout!r}; use one of {sorted(LAYOUTS)}")
    if train < 0 or val < 0:
        raise MsdetrError(f"synthetic dataset: image counts must be >= 0, got train={train}, val={val}")
    if size < 32:
        raise MsdetrError(f"synthetic dataset: size must be at least 32 pixels, got {size}")


def _clear_for_replacement(root: Path) -> None:
    """Remove `root` if it is empty, ours (marker), or an interrupted write of ours."""
    if not root.exists():
        return
    if not root.is_dir():
        raise MsdetrError(f"{root}: exists and is not a folder; choose another output folder")
    entries = {p.name for p in root.iterdir()}
    if entries and read_marker(root) is None and not entries <= _OWN_NAMES:
        raise MsdetrError(f"{root}: folder is not empty and is not a synthetic dataset made by msdetr; "
                          f"choose an empty or new folder")
    shutil.rmtree(root)


def create_synthetic_dataset(root: str | Path, train: int = 1000, val: int = 200, size: int = 256,
                             seed: int = 0, layout: str = "standard") -> Path:
    """(Re)generate the synthetic dataset at `root`; returns `root`.

    Refuses (MsdetrError) when `root` holds anything but an earlier synthetic dataset.
    """
    _check_arguments(train, val, size, layout)
    root = Path(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    _clear_for_replacement(root)  # fail early, before spending time on generation
    parameters = _parameters(train, val, size, seed, layout)
    staging = Path(tempfile.mkdtemp(prefix=f".{root.name}.partial-", dir=root.parent))
    try:
        write_synthetic_dataset(staging, train=train, val=val, size=size, seed=seed, layout=layout)
        with open(staging / MARKER, "w", encoding="utf-8") as f:
            json.dump(parameters, f)
        if read_marker(root) == parameters:  # another process finished the same dataset first
            return root
        _clear_for_replacement(root)
        os.rename(staging, root)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return root


def ensure_synthetic_dataset(root: str | Path | None = None, train: int = 1000, val: int = 200,
                             size: int = 256, seed: int = 0, layout: str = "standard") -> Path:
    """The synthetic dataset with these parameters at `root` (default: a folder named
    after the parameters in `default_cache_dir()`), generated only if not already there."""
    if root is None:
        name = f"synthetic-s{size}-train{train}-val{val}-seed{seed}"
        root = default_cache_dir() / (name if layout == "standard" else f"{name}-{layout}")
    root = Path(root)
    if read_marker(root) == _parameters(train, val, size, seed, layout):
        return root
    return create_synthetic_dataset(root, train=train, val=val, size=size, seed=seed, layout=layout)
