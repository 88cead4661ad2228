"""Non-finite losses: the step is skipped and counted; too many in a row stop the run with a clear error."""

from __future__ import annotations

import pytest
import torch

import msdetr.engine.trainer as trainer_module
from msdetr.cli import main
from msdetr.config.loader import save_config
from msdetr.engine.metrics_log import read_metrics
from msdetr.engine.trainer import Trainer
from support.tiny import tiny_run_config


def poison_criterion(monkeypatch, bad_calls):
    """Make the criterion's total loss nan on the given (1-based) calls."""
    real_build = trainer_module.build_criterion
    calls = {"n": 0}

    def build(*args, **kwargs):
        criterion = real_build(*args, **kwargs)
        real_forward = criterion.forward

        def forward(output, targets, **kwargs):
            calls["n"] += 1
            result = real_forward(output, targets, **kwargs)
            if bad_calls(calls["n"]):
                result.total = result.total * float("nan")
            return result

        criterion.forward = forward
        return criterion

    monkeypatch.setattr(trainer_module, "build_criterion", build)


@pytest.mark.slow
def test_non_finite_steps_are_skipped_and_counted(tmp_path, monkeypatch):
    poison_criterion(monkeypatch, lambda n: n in (2, 3))
    cfg = tiny_run_config(epochs=1, vis_images=0, max_nonfinite_steps=3)
    cfg.model.backbone.freeze_at = "all"
    snapshots = {}

    def snapshot(trainer, result):
        snapshots[trainer.step] = (result.ok, {k: v.clone() for k, v in trainer.model.state_dict().items()})

    result = Trainer(cfg, tmp_path / "run", verbose=False, callbacks=[snapshot]).fit()
    assert result.steps == 4 and result.skipped_steps == 2
    assert [snapshots[s][0] for s in (1, 2, 3, 4)] == [True, False, False, True]
    for name, value in snapshots[1][1].items():  # skipped steps change nothing
        assert torch.equal(snapshots[3][1][name], value), name
    assert any(not torch.equal(snapshots[4][1][k], v) for k, v in snapshots[3][1].items())
    assert read_metrics(tmp_path / "run", "train")[-1]["skipped_steps"] == 2


@pytest.mark.slow
def test_too_many_in_a_row_stop_with_a_clear_error(tmp_path, monkeypatch, capsys):
    poison_criterion(monkeypatch, lambda n: n >= 2)
    cfg = tiny_run_config(epochs=3, vis_images=0, max_nonfinite_steps=3)
    cfg.model.backbone.freeze_at = "all"
    save_config(cfg, tmp_path / "cfg.yaml")
    assert main(["train", "--config", str(tmp_path / "cfg.yaml"), "--output", str(tmp_path / "run"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "step 4" in err and "not finite 3 steps in a row" in err and "train.optimizer.lr" in err
    assert read_metrics(tmp_path / "run", "train")[-1]["skipped_steps"] == 2  # logged before the stop


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
@pytest.mark.slow
def test_amp_training_runs(tmp_path, amp):
    cfg = tiny_run_config(epochs=1, vis_images=0, amp=amp, max_steps=2)
    cfg.model.backbone.freeze_at = "all"
    result = Trainer(cfg, tmp_path / "run", verbose=False).fit()
    assert result.steps == 2 and result.skipped_steps == 0
