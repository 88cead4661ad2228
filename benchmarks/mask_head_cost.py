"""CPU time of one training step (forward, criterion, backward) with and without the mask head,
side by side in one run, on batches of the synthetic data with its polygon masks.

    python benchmarks/mask_head_cost.py --preset tiny_seg --steps 12 --threads 1

The two models are the preset's, one with `model.mask_head.enabled` off (and no mask losses);
steps alternate between them on the same batches, and the median process CPU time per step is
reported (process CPU time is less sensitive than wall time to other jobs on a shared machine).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from msdetr.config.loader import load_config
from msdetr.data.build import build_datasets
from msdetr.data.collate import collate
from msdetr.losses.build import build_criterion
from msdetr.modeling.build import build_model

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import command_line, markdown_table  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="tiny_seg", help="a preset with a mask head (default tiny_seg)")
    parser.add_argument("--steps", type=int, default=12, help="measured steps per model (after 2 warm-up steps)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = load_config(args.preset)
    if not cfg.model.mask_head.enabled:
        raise SystemExit(f"{args.preset}: has no mask head (model.mask_head.enabled is false)")
    train_set, _ = build_datasets(replace(cfg.data, masks=True))
    batch_size = cfg.train.batch_size
    batches = [collate([train_set[(batch_size * b + i, b)] for i in range(batch_size)]) for b in range(4)]
    models = {}
    for name, masks in [("boxes only", False), ("with mask head", True)]:
        torch.manual_seed(0)
        model_cfg = replace(cfg.model, num_classes=train_set.num_classes,
                            mask_head=replace(cfg.model.mask_head, enabled=masks))
        models[name] = (build_model(model_cfg).train(),
                        build_criterion(cfg.supervision, train_set.num_classes, with_masks=masks))
    times: dict[str, list[float]] = {name: [] for name in models}
    for step in range(args.steps + 2):
        batch = batches[step % len(batches)]
        for name, (model, criterion) in models.items():
            start = time.process_time()
            result = criterion(model(batch.images, batch.pixel_mask, targets=batch.targets), batch.targets)
            result.total.backward()
            model.zero_grad(set_to_none=True)
            if step >= 2:
                times[name].append(time.process_time() - start)
    base = statistics.median(times["boxes only"])
    rows = [[name, f"{statistics.median(t):.3f}", f"{statistics.median(t) / base:.2f}"] for name, t in times.items()]
    print(command_line())
    print(markdown_table(["model", "median CPU s / step", "ratio"], rows))


if __name__ == "__main__":
    main()
