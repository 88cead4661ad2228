"""Find the splits of a dataset in COCO layout.

A dataset folder holds `annotations/instances_<split>.json` and one image folder
`<split>/` per split (`train2017`/`val2017`, `train`/`val`, ...). Every command that
takes data accepts such a folder (all splits it finds) or one json file plus an image
folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from msdetr.errors import MsdetrError

ANNOTATION_PREFIX = "instances_"


@dataclass(frozen=True)
class SplitSource:
    """One split: its name, its annotation json and the folder its images are in."""

    name: str
    annotations: Path
    images: Path


def split_name_of(annotation_file: Path) -> str:
    """`instances_val2017.json` -> `val2017`; any other json -> its stem."""
    stem = annotation_file.stem
    return stem[len(ANNOTATION_PREFIX) :] if stem.startswith(ANNOTATION_PREFIX) else stem


def source_from_json(annotation_file: str | Path, images: str | Path | None = None) -> SplitSource:
    """A split given as a json file; `images` defaults to `<root>/<split>/` of COCO layout."""
    annotation_file = Path(annotation_file)
    if not annotation_file.is_file():
        raise MsdetrError(f"{annotation_file}: annotation file not found; pass a COCO instances json")
    name = split_name_of(annotation_file)
    if images is None:
        guess = annotation_file.resolve().parent.parent / name
        if annotation_file.resolve().parent.name != "annotations" or not guess.is_dir():
            raise MsdetrError(
                f"{annotation_file}: cannot tell where its images are; pass the image folder "
                f"(--images DIR), or use COCO layout <root>/annotations/instances_<split>.json "
                f"with images in <root>/<split>/"
            )
        images = guess
    return SplitSource(name=name, annotations=annotation_file, images=Path(images))


def find_splits(root: str | Path) -> list[SplitSource]:
    """All splits of a dataset folder in COCO layout, sorted by name."""
    root = Path(root)
    if not root.is_dir():
        raise MsdetrError(f"{root}: dataset folder not found")
    files = sorted((root / "annotations").glob(f"{ANNOTATION_PREFIX}*.json"))
    if not files:
        raise MsdetrError(
            f"{root}: no annotations/{ANNOTATION_PREFIX}<split>.json found; a dataset folder needs "
            f"COCO layout (annotations/{ANNOTATION_PREFIX}train.json with images in train/), "
            f"or pass one json file with --images DIR"
        )
    return [SplitSource(split_name_of(f), f, root / split_name_of(f)) for f in files]


def find_split(root: str | Path, name: str) -> SplitSource:
    """The split called `name`, or else the only split whose name starts with `name`."""
    splits = find_splits(root)
    exact = [s for s in splits if s.name == name]
    if exact:
        return exact[0]
    prefixed = [s for s in splits if s.name.startswith(name)]
    if len(prefixed) == 1:
        return prefixed[0]
    found = ", ".join(s.name for s in splits)
    what = "several splits start with" if prefixed else "no split named"
    raise MsdetrError(f"{root}: {what} '{name}' (found: {found}); name the split exactly")


def resolve_sources(path: str | Path, images: str | Path | None = None) -> list[SplitSource]:
    """What a command's DIR_OR_JSON argument (plus optional --images) refers to."""
    path = Path(path)
    if path.is_dir():
        if images is not None:
            raise MsdetrError(f"{path}: --images goes with a json file, not with a dataset folder")
        return find_splits(path)
    if path.suffix.lower() == ".json" or path.is_file():
        return [source_from_json(path, images)]
    raise MsdetrError(f"{path}: not found; pass a dataset folder or a COCO instances json")
