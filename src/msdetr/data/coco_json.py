"""Read a COCO instances json and check the structure every later step relies on."""

from __future__ import annotations

import json
from pathlib import Path

from msdetr.errors import MsdetrError


def load_coco_json(path: str | Path) -> dict:
    """Parse a COCO instances file: a dict with lists `images`, `categories` and
    (optional, e.g. for test sets) `annotations`.

    Raises MsdetrError naming the file when it is missing, not json, or not shaped
    like COCO. Returns the dict with `annotations` filled in ([] when absent).
    """
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as f:
            coco = json.load(f)
    except FileNotFoundError as err:
        raise MsdetrError(f"{path}: annotation file not found; check the path") from err
    except (OSError, UnicodeDecodeError) as err:
        raise MsdetrError(f"{path}: cannot read the annotation file ({err})") from err
    except json.JSONDecodeError as err:
        raise MsdetrError(
            f"{path}: not valid json (line {err.lineno}, column {err.colno}: {err.msg}); "
            f"fix or re-export the file"
        ) from err
    if not isinstance(coco, dict):
        raise MsdetrError(f"{path}: the top level must be a json object with 'images', 'annotations', "
                          f"'categories'; this does not look like COCO format")
    coco.setdefault("annotations", [])
    for key in ("images", "categories", "annotations"):
        if key not in coco:
            raise MsdetrError(f"{path}: missing '{key}' list; this does not look like COCO instances format")
        if not isinstance(coco[key], list):
            raise MsdetrError(f"{path}: '{key}' must be a list, found {type(coco[key]).__name__}")
    for key in ("images", "categories", "annotations"):
        for index, record in enumerate(coco[key]):
            if not isinstance(record, dict):
                raise MsdetrError(f"{path}: {key}[{index}] must be a json object, found "
                                  f"{type(record).__name__}")
    return coco
