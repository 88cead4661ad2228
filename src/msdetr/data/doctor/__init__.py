"""The data doctor: find every problem in a COCO-format dataset before training."""

from msdetr.data.doctor.check import check_dataset, check_split
from msdetr.data.doctor.report import DoctorReport, Issue, SplitReport, SplitSummary

__all__ = ["DoctorReport", "Issue", "SplitReport", "SplitSummary", "check_dataset", "check_split"]
