"""Run every check on a dataset folder or one json file."""

from __future__ import annotations

from pathlib import Path

from msdetr.data.annotation_table import ImageTable
from msdetr.data.coco_json import load_coco_json
from msdetr.data.doctor.image_checks import check_image_files
from msdetr.data.doctor.record_checks import check_annotation_records, check_categories, check_image_records
from msdetr.data.doctor.report import DoctorReport, SplitReport, error, warning
from msdetr.data.doctor.summary import summarize
from msdetr.data.layout import SplitSource, resolve_sources
from msdetr.errors import MsdetrError


def check_split(
    source: SplitSource,
    num_classes: int | None = None,
    raw_category_ids: bool = False,
    decode_images: bool = True,
) -> SplitReport:
    """All problems of one split (json records and image files) plus its summary."""
    report = SplitReport(source=source)
    try:
        coco = load_coco_json(source.annotations)
    except MsdetrError as err:
        report.issues.append(error("bad_json", str(source.annotations), str(err).split(": ", 1)[-1]))
        return report
    images = ImageTable.from_records(coco["images"])
    category_issues, categories = check_categories(coco["categories"], num_classes, raw_category_ids)
    report.issues += category_issues
    report.issues += check_image_records(images)
    report.issues += check_image_files(images, Path(source.images), decode=decode_images)
    report.issues += check_annotation_records(coco, images, categories)
    if not coco["images"]:
        report.issues.append(warning("no_images", str(source.annotations), "the split has no images"))
    elif not coco["annotations"]:
        report.issues.append(warning("no_annotations", str(source.annotations),
                                     "the split has no annotations (fine for a test set, not for training)"))
    report.summary = summarize(coco, images, categories)
    return report


def check_dataset(
    path: str | Path,
    images: str | Path | None = None,
    num_classes: int | None = None,
    raw_category_ids: bool = False,
    decode_images: bool = True,
) -> DoctorReport:
    """Check every split of a dataset folder (COCO layout), or one json + image folder.

    Raises MsdetrError only when `path` cannot be resolved to any split; every problem
    inside a split is an issue in the report.
    """
    sources = resolve_sources(path, images)
    return DoctorReport([check_split(s, num_classes, raw_category_ids, decode_images) for s in sources])
