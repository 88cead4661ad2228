"""Loss and mAP curves of a run as PNG files (matplotlib, Agg backend)."""

from __future__ import annotations

from pathlib import Path

from msdetr.engine.metrics_log import read_metrics


def save_curves(run_dir: str | Path) -> list[Path]:
    """Write `loss.png` (training loss per logged step) and `map.png` (bbox mAP and mAP@0.5
    per evaluation) from `metrics.jsonl`; returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run_dir = Path(run_dir)
    written = []

    def save(fig, ax, xlabel: str, ylabel: str, name: str) -> None:
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(run_dir / name, dpi=100)
        plt.close(fig)
        written.append(run_dir / name)

    train = [r for r in read_metrics(run_dir, "train") if isinstance(r.get("loss"), float)]
    if train:
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot([r["step"] for r in train], [r["loss"] for r in train], label="total loss")
        ax.set_yscale("log")
        save(fig, ax, "optimizer step", "weighted loss", "loss.png")
    evals = read_metrics(run_dir, "eval")
    if evals:
        fig, ax = plt.subplots(figsize=(6, 4))
        epochs = [r["epoch"] + 1 for r in evals]
        ax.plot(epochs, [r.get("bbox_mAP", float("nan")) for r in evals], "o-", label="mAP@[.5:.95]")
        ax.plot(epochs, [r.get("bbox_mAP_50", float("nan")) for r in evals], "s-", label="mAP@0.5")
        ax.set_ylim(0, 1)
        save(fig, ax, "epoch", "bbox AP", "map.png")
    return written
