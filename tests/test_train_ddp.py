"""Two processes under torchrun (gloo, CPU) train as one process with the same total batch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from msdetr.config.loader import save_config
from msdetr.engine.metrics_log import read_metrics
from msdetr.engine.trainer import Trainer
from support.tiny import final_weights, tiny_run_config

SRC = str(Path(__file__).resolve().parents[1] / "src")


@pytest.mark.slow
def test_two_gloo_processes_match_one_process(tmp_path):
    single = tiny_run_config(
        tmp_path, train_images=8, val_images=3, epochs=1, batch_size=2, vis_images=0, num_threads=1
    )
    single.model.backbone.freeze_at = "all"
    single.supervision.one_to_many.positive_fraction = 1.0  # no random subsampling: same on any rank
    after_first_step = {}

    def remember(trainer, result):
        if trainer.step == 1:  # lr is still ~0 (warmup): these are the initial weights to 1e-6
            after_first_step.update({k: v.clone() for k, v in trainer.model.state_dict().items()})

    reference = Trainer(single, tmp_path / "single", verbose=False, callbacks=[remember]).fit()

    two = tiny_run_config(tmp_path, train_images=8, val_images=3, epochs=1, batch_size=1, vis_images=0, num_threads=1)
    two.model.backbone.freeze_at = "all"
    two.supervision.one_to_many.positive_fraction = 1.0
    two.train.reference_batch_size = 2  # same lr: 1 image x 2 processes
    save_config(two, tmp_path / "ddp.yaml")
    env = {
        **os.environ,
        "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""),
        "OMP_NUM_THREADS": "1",
    }
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "msdetr",
        "train",
        "--config",
        str(tmp_path / "ddp.yaml"),
        "--output",
        str(tmp_path / "ddp"),
        "--quiet",
    ]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]

    # the same loss at every step (DDP logs the mean over ranks, normalized by the mean target count)
    ddp_log, single_log = read_metrics(tmp_path / "ddp", "train"), read_metrics(tmp_path / "single", "train")
    assert [r["step"] for r in ddp_log] == [r["step"] for r in single_log] == [1, 2, 3, 4]
    for a, b in zip(ddp_log, single_log):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)
        assert a["grad_norm"] == pytest.approx(b["grad_norm"], rel=1e-3)

    # the same weights, up to round-off (and padding: one process pads its 2-image batches, DDP does not)
    # that AdamW's normalized steps amplify to a few % of the update (0.04 measured)
    ddp, expected = final_weights(tmp_path / "ddp"), final_weights(tmp_path / "single")
    floats = [k for k, v in expected.items() if v.is_floating_point()]
    difference = torch.cat([(ddp[k] - expected[k]).flatten() for k in floats]).norm()
    update = torch.cat([(expected[k] - after_first_step[k]).flatten() for k in floats]).norm()
    assert update > 0 and difference < 0.1 * update, (float(difference), float(update))
    ddp_eval = read_metrics(tmp_path / "ddp", "eval")[-1]
    assert ddp_eval["num_images"] == 3  # every validation image once, gathered from both ranks
    assert ddp_eval["bbox_mAP"] == pytest.approx(reference.metrics["bbox_mAP"], abs=1e-3)
