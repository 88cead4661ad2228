"""Metrics as JSON lines (`metrics.jsonl`), optionally mirrored to TensorBoard. Rank 0 only.

Each line is one record: {"kind": "train" | "epoch" | "eval", "step": int, "epoch": int,
...values}. `step` counts optimizer steps done (1-based); `epoch` is the 1-based epoch the
record belongs to (the one in progress for `train`, the one just trained for `epoch` and
`eval`; a run stopped inside an epoch by `max_steps` or a time budget reports that epoch).

* `train`, every `train.log_every` steps: `loss` (the back-propagated total, WEIGHTED by
  `loss_weights`), `loss.<stream>` (the weighted loss of one supervision stream -- one_to_one,
  one_to_many, encoder, hybrid, group, denoising, dac -- summed over its decoder layers; the
  streams add up to `loss`), all means over the finite steps since the last record; `lr` (the
  first parameter group's), `lr_factor` (the schedule's), `grad_norm` (before clipping, last
  step), `skipped_steps` (non-finite steps so far), `s_per_step`.
* `epoch`, after each epoch (or the part of it trained): `loss` and `loss.<stream>` (weighted,
  epoch means), `skipped_steps`, and every loss term `<stream>.layer<i>.<term>` /
  `encoder.<term>` as its UNWEIGHTED epoch mean (multiply by `loss_weights.<stream>.<term>` to
  get its share of `loss`).
* `eval`: the 12 COCO numbers `bbox_mAP`, `bbox_mAP_50`, ... (and `segm_mAP`, ... for mask
  models), `AP/<class>` (box AP@[.5:.95] per class) and `num_images`.

Runs written before the epoch numbering was made 1-based have 0-based `epoch` fields.
TensorBoard (`train.tensorboard`): every number of a record as the scalar `<kind>/<key>`
(e.g. `train/loss`, `train/loss.one_to_many`, `eval/segm_mAP`) at its `step`, in
`<run>/tensorboard`. `read_metrics` reads the records back (for curves and tests).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from msdetr.errors import MsdetrError

METRICS_FILE = "metrics.jsonl"


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no nan/inf
    return value


class MetricsLog:
    """Appends records to `<run>/metrics.jsonl`; `enabled=False` (other ranks) does nothing."""

    def __init__(self, run_dir: Path, enabled: bool = True, tensorboard: bool = False):
        self.enabled = enabled
        self.path = Path(run_dir) / METRICS_FILE
        self._tb = None
        if enabled and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise MsdetrError(
                    "train.tensorboard: the tensorboard package is not installed; `pip install tensorboard` "
                    "(the msdetr[tensorboard] extra) or set train.tensorboard=false"
                ) from None
            self._tb = SummaryWriter(log_dir=str(Path(run_dir) / "tensorboard"))

    def write(self, kind: str, step: int, epoch: int, values: dict[str, Any]) -> None:
        if not self.enabled:
            return
        record = {"kind": kind, "step": step, "epoch": epoch, **{k: _clean(v) for k, v in values.items()}}
        with self.path.open("a") as fh:
            fh.write(json.dumps(record) + "\n")
        if self._tb is not None:
            for key, value in values.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    self._tb.add_scalar(f"{kind}/{key}", value, step)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


def read_metrics(run_dir: str | Path, kind: str | None = None) -> list[dict[str, Any]]:
    """Records of `<run>/metrics.jsonl`, optionally of one kind."""
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        return []
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in records if kind is None or r.get("kind") == kind]


def truncate_after(run_dir: str | Path, step: int) -> None:
    """Drop records past optimizer step `step` (a resumed run rewrites them)."""
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        return
    keep = [line for line in path.read_text().splitlines() if line.strip() and json.loads(line).get("step", 0) <= step]
    path.write_text("".join(line + "\n" for line in keep))
