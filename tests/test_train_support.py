"""Helpers for the training tests: a tiny run config on a tiny synthetic dataset (no tests here)."""

from __future__ import annotations

from pathlib import Path

import torch

from msdetr.config.data import DataConfig, SyntheticConfig, TransformConfig
from msdetr.config.model import BackboneConfig, MixedSupervisionConfig, ModelConfig
from msdetr.config.schema import Config, EvalConfig, OptimizerConfig, ScheduleConfig, TrainConfig
from msdetr.config.supervision import SupervisionConfig


def tiny_run_config(
    tmp_path: Path,
    *,
    train_images: int = 8,
    val_images: int = 4,
    epochs: int = 2,
    batch_size: int = 2,
    mixed: bool = True,
    **train_overrides,
) -> Config:
    """resnet18 at 64 px, hidden 32, 1+2 layers, 8 queries, synthetic data in `tmp_path/synthetic`."""
    model = ModelConfig(
        num_classes=6,
        hidden_dim=32,
        nheads=2,
        enc_layers=1,
        dec_layers=2,
        dim_feedforward=64,
        dropout=0.0,
        num_queries=8,
        num_feature_levels=2,
        enc_n_points=2,
        dec_n_points=2,
        backbone=BackboneConfig(name="resnet18", freeze_at="layer1"),
        mixed_supervision=MixedSupervisionConfig(enabled=mixed),
    )
    data = DataConfig(
        synthetic=SyntheticConfig(
            train=train_images, val=val_images, size=64, seed=0, directory=str(tmp_path / "synthetic")
        ),
        transforms=TransformConfig(
            train_min_sizes=[48, 64],
            train_max_size=64,
            crop_probability=0.0,
            eval_min_size=64,
            eval_max_size=64,
        ),
        num_workers=0,
    )
    train = TrainConfig(
        epochs=epochs,
        batch_size=batch_size,
        reference_batch_size=batch_size,
        device="cpu",
        num_threads=torch.get_num_threads(),
        progress=False,
        log_every=1,
        vis_images=1,
        optimizer=OptimizerConfig(lr=1e-3, lr_backbone=1e-4),
        schedule=ScheduleConfig(name="cosine", warmup_steps=2),
    )
    for key, value in train_overrides.items():
        setattr(train, key, value)
    return Config(
        name="test",
        model=model,
        data=data,
        supervision=SupervisionConfig(strategy="mixed" if mixed else "one_to_one"),
        train=train,
        eval=EvalConfig(topk=20),
    )


def final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    """The weights being trained in `run_dir/last.pt` (raw ones when EMA is on)."""
    ckpt = torch.load(run_dir / "last.pt", map_location="cpu", weights_only=False)
    return ckpt["train_state"].get("raw_model", ckpt["model"])
