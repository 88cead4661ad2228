"""Find the image files a command was given: files, folders and glob patterns.

- A file is taken as given, whatever its extension (an unreadable one is reported
  later, when it is decoded).
- A folder contributes every file with an image extension below it, recursively.
- Anything else is read as a glob pattern (`**` spans folders); a pattern that
  matches nothing, or a path that does not exist, is reported as a problem.

The result is ordered as the inputs were given (each folder or pattern sorted by
path) without duplicates.
"""

from __future__ import annotations

import glob
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm"}
)
_GLOB_CHARS = set("*?[")


@dataclass
class FoundImages:
    """files: image paths in input order; problems: (input, reason) for inputs that gave none."""

    files: list[Path] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)


def is_image_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS


def _images_in_folder(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if is_image_file(p))


def find_images(inputs: Iterable[str | Path]) -> FoundImages:
    """Expand files, folders and glob patterns into a list of image files (see module doc)."""
    found = FoundImages()
    seen: set[Path] = set()

    def add(paths: Iterable[Path]) -> None:
        for path in paths:
            key = path.resolve()
            if key not in seen:
                seen.add(key)
                found.files.append(path)

    for item in inputs:
        text = str(item)
        path = Path(text).expanduser()
        if path.is_file():
            add([path])
        elif path.is_dir():
            images = _images_in_folder(path)
            if not images:
                kinds = ", ".join(sorted(IMAGE_EXTENSIONS))
                found.problems.append((text, f"folder holds no image files ({kinds})"))
            add(images)
        elif _GLOB_CHARS & set(text):
            matches = sorted(Path(m) for m in glob.glob(str(path), recursive=True))
            images = [m for m in matches if is_image_file(m)]
            if not images:
                found.problems.append((text, "pattern matches no image files"))
            add(images)
        else:
            found.problems.append((text, "no such file or folder"))
    return found
