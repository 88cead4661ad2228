"""train.compile: the model and the criterion's loss arithmetic under torch.compile train on the CPU.

The tests use the "aot_eager" backend (dynamo graphs + AOTAutograd, run by the eager kernels): it
exercises the capture of forward and backward without a C++ compiler, fast enough for CI; the
default "inductor" backend additionally generates code (docs/training.md)."""

from __future__ import annotations

import pytest
import torch

from msdetr.config.supervision import SupervisionConfig
from msdetr.engine.compile import compile_criterion
from msdetr.engine.trainer import Trainer
from msdetr.errors import MsdetrError
from msdetr.losses import build_criterion
from support.fakes import random_output, random_targets
from support.tiny import tiny_run_config


@pytest.mark.slow
def test_compiled_criterion_equals_eager():
    torch._dynamo.reset()
    output, targets = random_output(num_layers=2, batch=2, num_queries=8), random_targets([3, 1])
    config = SupervisionConfig(strategy="mixed")
    eager = build_criterion(config, 5)
    compiled = compile_criterion(build_criterion(config, 5), backend="aot_eager")
    for seed in range(2):  # a second step with other pair counts: dynamic shapes, no failure
        torch.manual_seed(seed)
        expected = eager(output, targets)
        torch.manual_seed(seed)
        got = compiled(output, targets)
        torch.testing.assert_close(got.total, expected.total)
        assert got.term_values() == pytest.approx(expected.term_values(), rel=1e-5, abs=1e-6)
        targets = random_targets([2, 4], seed=5)


@pytest.mark.slow
def test_training_with_compile_runs(tmp_path):
    torch._dynamo.reset()
    cfg = tiny_run_config(epochs=1, vis_images=0, max_steps=2, compile=True, compile_backend="aot_eager")
    cfg.model.backbone.freeze_at = "all"
    cfg.data.transforms.train_min_sizes = [64]  # one input shape: one compilation
    trainer = Trainer(cfg, tmp_path / "run", verbose=False)
    result = trainer.fit()
    assert result.steps == 2 and result.skipped_steps == 0
    assert isinstance(trainer.ddp_model, torch._dynamo.eval_frame.OptimizedModule)
    assert trainer.criterion.dense_losses is not None
    assert not any(name.startswith("_orig_mod") for name in trainer.model.state_dict())  # saved as usual


def test_unknown_backend_is_a_clear_error():
    with pytest.raises(MsdetrError, match="compile_backend"):
        compile_criterion(build_criterion(SupervisionConfig(), 5), backend="no_such_backend")
