"""EMA: evaluated and saved as the model, raw weights kept for resuming."""

from __future__ import annotations

import pytest
import torch

from msdetr.engine.trainer import Trainer
from support.tiny import tiny_run_config


@pytest.mark.slow
def test_ema_weights_are_saved_and_resumable(tmp_path):
    cfg = tiny_run_config(epochs=1, vis_images=0, max_steps=3)
    cfg.model.backbone.freeze_at = "all"
    cfg.train.ema.enabled, cfg.train.ema.decay, cfg.train.ema.warmup_steps = True, 0.5, 0
    trainer = Trainer(cfg, tmp_path / "run", verbose=False)
    trainer.fit()
    ckpt = torch.load(tmp_path / "run" / "last.pt", map_location="cpu", weights_only=False)
    raw, averaged = ckpt["train_state"]["raw_model"], ckpt["model"]
    assert ckpt["train_state"]["ema_updates"] == 3
    for name, value in trainer.model.state_dict().items():
        assert torch.equal(raw[name], value)
        assert torch.equal(averaged[name], trainer.ema.module.state_dict()[name])
    moved = [k for k in raw if raw[k].is_floating_point() and not torch.equal(raw[k], averaged[k])]
    assert moved  # the average lags behind the trained weights
    best = torch.load(tmp_path / "run" / "best.pt", map_location="cpu", weights_only=False)
    assert all(torch.equal(best["model"][k], averaged[k]) for k in averaged)
