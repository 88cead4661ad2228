"""A run killed mid-epoch and resumed ends with the same weights as an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from msdetr.cli import main
from msdetr.config.loader import save_config
from msdetr.engine.metrics_log import read_metrics
from msdetr.engine.trainer import Trainer
from support.tiny import final_weights, tiny_run_config

SRC = str(Path(__file__).resolve().parents[1] / "src")


def last_logged_step(run: Path) -> int:
    try:
        lines = (run / "metrics.jsonl").read_text().splitlines()
    except FileNotFoundError:
        return 0
    steps = [json.loads(line)["step"] for line in lines if line.strip().startswith("{") and '"train"' in line]
    return max(steps, default=0)


@pytest.mark.slow
def test_killed_run_resumes_to_identical_weights(tmp_path):
    cfg = tiny_run_config(
        tmp_path,
        train_images=8,
        val_images=2,
        epochs=2,
        deterministic=True,
        checkpoint_every_steps=1,
        eval_every=0,
        vis_images=0,
    )
    cfg.model.backbone.freeze_at = "all"  # small checkpoints
    steps_per_epoch = 8 // cfg.train.batch_size

    reference = Trainer(cfg, tmp_path / "reference", verbose=False).fit()
    assert reference.steps == 2 * steps_per_epoch

    save_config(cfg, tmp_path / "run.yaml")
    run = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "msdetr",
            "train",
            "--config",
            str(tmp_path / "run.yaml"),
            "--output",
            str(run),
            "--quiet",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.time() + 300
    while last_logged_step(run) < 2 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)  # no chance to clean up, like a power cut
    _, err = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, err.decode()[-2000:]

    state = torch.load(run / "last.pt", map_location="cpu", weights_only=False)["train_state"]
    assert 1 <= state["step"] < steps_per_epoch and state["samples_in_epoch"] > 0  # killed mid-epoch
    assert main(["train", "--resume", str(run), "--quiet"]) == 0

    resumed, expected = final_weights(run), final_weights(tmp_path / "reference")
    assert resumed.keys() == expected.keys()
    for name, value in expected.items():
        assert torch.equal(resumed[name], value), name
    steps = [r["step"] for r in read_metrics(run, "train")]
    assert steps == list(range(1, 2 * steps_per_epoch + 1))  # records of the re-done steps replaced


def test_resume_errors_are_clear(tmp_path):
    from msdetr.engine.checkpoint import resolve_resume_path
    from msdetr.errors import MsdetrError

    with pytest.raises(MsdetrError, match="no such run folder"):
        resolve_resume_path(tmp_path / "nothing")
    (tmp_path / "empty_run").mkdir()
    with pytest.raises(MsdetrError, match="no last.pt"):
        resolve_resume_path(tmp_path / "empty_run")
