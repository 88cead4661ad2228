"""Loss and mAP curves of a run as PNG files (matplotlib, Agg backend).

`loss.png`: the weighted training loss per logged step, total and one curve per supervision
stream (`loss.<stream>` of metrics.jsonl; the streams add up to the total), on a linear axis
from 0 whose top leaves out the first steps' spike. `map.png`: bbox mAP and mAP@0.5 per
evaluation, and the segm ones (dashed) for models with a mask head.
"""

from __future__ import annotations

import math
from pathlib import Path

from msdetr.engine.metrics_log import read_metrics
from msdetr.engine.stream_losses import PREFIX

# The loss axis ends a little above the largest value after this fraction of the logged steps:
# the first steps' losses (several times the later ones) would flatten every curve otherwise.
SKIP_FRACTION = 0.1
HEADROOM = 1.15


def _number(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def loss_axis_top(totals: list[float]) -> float:
    """Top of the loss axis: HEADROOM x the largest total after the first SKIP_FRACTION of the points."""
    tail = totals[int(len(totals) * SKIP_FRACTION):] or totals
    return HEADROOM * max(tail)


def map_curves(evals: list[dict]) -> dict[str, list[float]]:
    """The curves of `map.png` by label: bbox mAP@[.5:.95] and mAP@0.5, and the segm ones when
    the records have them (mask models); one value per `eval` record (nan where missing)."""
    families = ["bbox"] + (["segm"] if any("segm_mAP" in r for r in evals) else [])
    curves = {}
    for family in families:
        curves[f"{family} mAP@[.5:.95]"] = [r.get(f"{family}_mAP", float("nan")) for r in evals]
        curves[f"{family} mAP@0.5"] = [r.get(f"{family}_mAP_50", float("nan")) for r in evals]
    return curves


def save_curves(run_dir: str | Path) -> list[Path]:
    """Write `loss.png` and `map.png` from `metrics.jsonl`; returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run_dir = Path(run_dir)
    written = []

    def save(fig, ax, xlabel: str, ylabel: str, name: str) -> None:
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
        fig.tight_layout()
        fig.savefig(run_dir / name, dpi=100)
        plt.close(fig)
        written.append(run_dir / name)

    train = [r for r in read_metrics(run_dir, "train") if _number(r.get("loss")) is not None]
    if train:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        steps = [r["step"] for r in train]
        totals = [float(r["loss"]) for r in train]
        ax.plot(steps, totals, color="black", linewidth=1.8, label="total")
        streams = sorted({k for r in train for k in r if k.startswith(PREFIX)})
        for key in streams:
            points = [(r["step"], _number(r.get(key))) for r in train]
            points = [(s, v) for s, v in points if v is not None]
            ax.plot([s for s, _ in points], [v for _, v in points], linewidth=1.2, label=key[len(PREFIX):])
        top = loss_axis_top(totals)
        ax.set_ylim(0, top if top > 0 else None)
        ax.set_title("training loss (weighted, summed over layers)", fontsize="medium")
        save(fig, ax, "optimizer step", "loss", "loss.png")
    evals = read_metrics(run_dir, "eval")
    if evals:
        fig, ax = plt.subplots(figsize=(6, 4))
        epochs = [r["epoch"] for r in evals]
        for label, values in map_curves(evals).items():
            style = ("o" if "[" in label else "s") + ("--" if label.startswith("segm") else "-")
            ax.plot(epochs, values, style, label=label)
        ax.set_ylim(0, 1)
        save(fig, ax, "epoch", "AP", "map.png")
    return written
