"""What the data doctor found: issues (each naming its file / record) and a summary."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

from msdetr.data.layout import SplitSource

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Issue:
    """One problem. kind: a short code (e.g. "missing_image"); where: the image file
    and/or record ("000012.png: annotation 57"); message: what is wrong and what to do."""

    severity: Severity
    kind: str
    where: str
    message: str

    def line(self) -> str:
        return f"{self.severity.upper():<7} {self.kind:<24} {self.where}: {self.message}"


def error(kind: str, where: str, message: str) -> Issue:
    return Issue("error", kind, where, message)


def warning(kind: str, where: str, message: str) -> Issue:
    return Issue("warning", kind, where, message)


@dataclass
class SplitSummary:
    """Counts for one split. objects_per_class: "name (id N)" -> non-crowd objects;
    box_sizes: COCO area ranges ("small" < 32^2 <= "medium" < 96^2 <= "large")."""

    images: int = 0
    images_without_objects: int = 0
    objects: int = 0
    crowd: int = 0
    objects_per_class: dict[str, int] = field(default_factory=dict)
    box_sizes: dict[str, int] = field(default_factory=dict)
    min_size: tuple[int, int] | None = None  # (width, height) of the smallest image (by area)
    max_size: tuple[int, int] | None = None
    median_short_side: float | None = None

    def lines(self) -> list[str]:
        out = [f"summary: {self.images} images ({self.images_without_objects} without objects), "
               f"{self.objects} objects, {self.crowd} crowd regions"]
        if self.min_size and self.max_size:
            out.append(f"  image sizes (width x height): {self.min_size[0]}x{self.min_size[1]} .. "
                       f"{self.max_size[0]}x{self.max_size[1]}, median shorter side "
                       f"{self.median_short_side:.0f} px")
        if self.objects_per_class:
            out.append("  objects per class:")
            width = max(len(name) for name in self.objects_per_class)
            out += [f"    {name:<{width}}  {count}" for name, count in self.objects_per_class.items()]
        if self.objects:
            parts = [f"{k} {v} ({100 * v / self.objects:.0f}%)" for k, v in self.box_sizes.items()]
            out.append("  object sizes (COCO area ranges): " + ", ".join(parts))
        return out


@dataclass
class SplitReport:
    source: SplitSource
    issues: list[Issue] = field(default_factory=list)
    summary: SplitSummary | None = None

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == "error"]

    @property
    def warnings(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == "warning"]


@dataclass
class DoctorReport:
    splits: list[SplitReport]

    @property
    def issues(self) -> list[Issue]:
        return [i for s in self.splits for i in s.issues]

    @property
    def ok(self) -> bool:
        """True when no split has an error (warnings allowed)."""
        return not any(s.errors for s in self.splits)

    def kinds(self) -> Counter:
        """How many issues of each kind."""
        return Counter(i.kind for i in self.issues)

    def format(self, max_per_kind: int | None = 20) -> str:
        """Human-readable report; at most `max_per_kind` lines per kind and split
        (None: all), the rest counted."""
        lines: list[str] = []
        for split in self.splits:
            src = split.source
            lines.append(f"== {src.name}: {src.annotations} (images in {src.images})")
            shown: Counter = Counter()
            for issue in split.issues:
                shown[issue.kind] += 1
                if max_per_kind is None or shown[issue.kind] <= max_per_kind:
                    lines.append(issue.line())
            for kind, count in shown.items():
                if max_per_kind is not None and count > max_per_kind:
                    more = count - max_per_kind
                    lines.append(f"...     {kind:<24} {more} more (use --all to list every one)")
            if split.summary is not None:
                lines += split.summary.lines()
            lines.append(f"  {len(split.errors)} error(s), {len(split.warnings)} warning(s)")
            lines.append("")
        errors = sum(len(s.errors) for s in self.splits)
        warnings = sum(len(s.warnings) for s in self.splits)
        verdict = "OK" if errors == 0 else "FAILED"
        lines.append(f"{verdict}: {errors} error(s), {warnings} warning(s) in {len(self.splits)} split(s)")
        return "\n".join(lines)
