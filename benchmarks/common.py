"""Helpers shared by the benchmark scripts: synthetic batches, timing statistics, the machine
description and markdown tables. Nothing here is part of the library's public API.
"""

from __future__ import annotations

import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from msdetr.data.collate import Batch


def parse_size(text: str) -> tuple[int, int]:
    """ "512" -> (512, 512); "480x640" -> (480, 640) as (height, width)."""
    parts = text.lower().split("x")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        values = []
    if len(values) not in (1, 2) or min(values) < 32:
        raise ValueError(f"image size {text!r}: expected N or HxW with sides >= 32 pixels")
    return (values[0], values[-1])


def random_batch(
    batch_size: int, size: tuple[int, int], num_objects: int, num_classes: int, generator: torch.Generator
) -> Batch:
    """A batch of random images with random boxes, like a real batch after the transforms.

    Every image has the full (H, W) `size` (no padding: the step cost does not depend on it)
    and `num_objects` boxes: normalized (cx, cy, w, h) with sides in [0.05, 0.5], labels
    uniform in [0, num_classes). Returns a `Batch` on the CPU: images (B, 3, H, W) float32,
    pixel_mask (B, H, W) all False.
    """
    height, width = size
    images = torch.randn(batch_size, 3, height, width, generator=generator)
    pixel_mask = torch.zeros(batch_size, height, width, dtype=torch.bool)
    targets = []
    for _ in range(batch_size):
        wh = 0.05 + 0.45 * torch.rand(num_objects, 2, generator=generator)
        centre = wh / 2 + (1 - wh) * torch.rand(num_objects, 2, generator=generator)
        targets.append(
            {
                "boxes": torch.cat([centre, wh], dim=1),
                "labels": torch.randint(0, num_classes, (num_objects,), generator=generator),
            }
        )
    return Batch(images=images, pixel_mask=pixel_mask, targets=targets)


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op on the CPU), so wall-clock times are honest."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


class Stopwatch:
    """Seconds of a block, synchronizing `device` at both ends.

    clock: "wall" (wall-clock time) or "cpu" (CPU time of this process, all its threads): on a
    shared machine other processes' load inflates wall time but hardly this process's CPU time;
    with one torch thread the two agree on an idle machine. Only "wall" is meaningful on a GPU.
    """

    def __init__(self, device: torch.device, clock: str = "wall") -> None:
        self.device = device
        self.clock = CLOCKS[clock]
        self.seconds = 0.0

    def __enter__(self) -> Stopwatch:
        synchronize(self.device)
        self._start = self.clock()
        return self

    def __exit__(self, *exc) -> None:
        synchronize(self.device)
        self.seconds = self.clock() - self._start


@dataclass
class Spread:
    """Median and inter-quartile range of n samples."""

    median: float
    p25: float
    p75: float
    n: int

    @classmethod
    def of(cls, samples: Sequence[float]) -> Spread:
        if not samples:
            return cls(float("nan"), float("nan"), float("nan"), 0)
        if len(samples) == 1:
            return cls(samples[0], samples[0], samples[0], 1)
        q = statistics.quantiles(samples, n=4, method="inclusive")
        return cls(statistics.median(samples), q[0], q[2], len(samples))

    def format(self, scale: float = 1.0, digits: int = 0) -> str:
        """ "median [p25-p75]" with values multiplied by `scale`."""
        return (
            f"{self.median * scale:.{digits}f} [{self.p25 * scale:.{digits}f}-{self.p75 * scale:.{digits}f}]"
        )

    def as_dict(self) -> dict[str, float]:
        return {"median": self.median, "p25": self.p25, "p75": self.p75, "n": self.n}


def _proc_status_bytes(field: str) -> int | None:
    """A `VmXXX: N kB` field of /proc/self/status in bytes (None where there is no /proc)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def reset_peak_rss() -> bool:
    """Restart the peak-RSS high-water mark (Linux >= 4.0: write 5 to /proc/self/clear_refs).

    Returns False where that is not possible (the peak then counts from process start).
    """
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
        return True
    except OSError:
        return False


def current_rss_bytes() -> int:
    """Resident set size now (VmRSS), or the peak so far where /proc is missing."""
    value = _proc_status_bytes("VmRSS")
    return value if value is not None else peak_rss_bytes()


def peak_rss_bytes() -> int:
    """Peak resident set size since the last `reset_peak_rss` (VmHWM), else since process start
    (`getrusage` ru_maxrss: KiB on Linux, bytes on macOS)."""
    value = _proc_status_bytes("VmHWM")
    if value is not None:
        return value
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def cpu_name() -> str:
    """The CPU model as the OS reports it, or the platform's processor string."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_description(device: torch.device) -> dict[str, str | int]:
    """What the numbers were measured on: CPU, cores, torch threads, versions, GPU."""
    info: dict[str, str | int] = {
        "cpu": cpu_name(),
        "cpu_cores": os.cpu_count() or 0,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": str(device),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def command_line() -> str:
    """The command that is running, for the record."""
    return " ".join(["python", *sys.argv])
