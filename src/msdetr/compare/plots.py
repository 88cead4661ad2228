"""Plots of a comparison: bbox mAP against optimizer steps and against wall time (seed mean as a
line, min-max over seeds as a band), and the per-stream training losses (seed mean)."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from msdetr.compare.report import STREAMS


def _by_index(runs: list[dict[str, Any]], x_key: str, y_key: str) -> tuple[list, list, list, list]:
    """Align the seeds' evaluations by their order: x mean, y mean / min / max per evaluation
    (evaluations that every seed reached)."""
    series = [[e for e in r["evals"] if e.get(x_key) is not None and y_key in e] for r in runs if not r["error"]]
    series = [s for s in series if s]
    if not series:
        return [], [], [], []
    n = min(len(s) for s in series)
    xs, mean, low, high = [], [], [], []
    for i in range(n):
        ys = [s[i][y_key] for s in series]
        xs.append(statistics.fmean(s[i][x_key] for s in series))
        mean.append(statistics.fmean(ys))
        low.append(min(ys))
        high.append(max(ys))
    return xs, mean, low, high


def plot_map(result: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, (x_key, label) in zip(axes, [("step", "optimizer steps"), ("wall_s", "wall time (s)")]):
        for variant in result["variants"]:
            xs, mean, low, high = _by_index(variant["runs"], x_key, "bbox_mAP")
            if not xs:
                continue
            line = ax.plot(xs, [100 * m for m in mean], marker="o", markersize=3, label=variant["name"])[0]
            ax.fill_between(xs, [100 * v for v in low], [100 * v for v in high], color=line.get_color(), alpha=0.2)
        ax.set_xlabel(label)
        ax.set_ylabel("val bbox mAP (%)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle("bbox mAP: seed mean, min-max band")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_losses(result: dict[str, Any], path: Path) -> Path | None:
    """One panel per stream: every variant's loss of that stream (unweighted sum of its terms), seed mean."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    found = {k for v in result["variants"] for r in v["runs"] for e in r["losses"] for k in e} - {"step"}
    streams = [s for s in STREAMS if s in found] + sorted(found - set(STREAMS))
    if not streams:
        return None
    fig, axes = plt.subplots(1, len(streams), figsize=(3.6 * len(streams), 3.4), squeeze=False)
    for ax, stream in zip(axes[0], streams):
        for variant in result["variants"]:
            per_step: dict[int, list[float]] = {}
            for run in variant["runs"]:
                for entry in run["losses"]:
                    if stream in entry:
                        per_step.setdefault(entry["step"], []).append(entry[stream])
            if per_step:
                steps = sorted(per_step)
                ax.plot(steps, [statistics.fmean(per_step[s]) for s in steps], marker=".", label=variant["name"])
        ax.set_title(stream)
        ax.set_xlabel("optimizer steps")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("training loss (sum of terms)")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_plots(result: dict[str, Any], out: Path) -> list[Path]:
    written = [plot_map(result, out / "compare_map.png")]
    losses = plot_losses(result, out / "compare_losses.png")
    return written + ([losses] if losses else [])
