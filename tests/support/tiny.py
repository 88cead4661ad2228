"""Tiny detector and run configs (random weights, CPU-fast), and padded image batches."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from msdetr.config.data import DataConfig, SyntheticConfig, TransformConfig
from msdetr.config.model import BackboneConfig, MixedSupervisionConfig, ModelConfig
from msdetr.config.schema import Config, EvalConfig, OptimizerConfig, ScheduleConfig, TrainConfig
from msdetr.config.supervision import SupervisionConfig

TINY_SIZE = 64  # pixels: the synthetic images and the eval size of the tiny runs


def tiny_model_config(*, mixed: bool | None = None, **overrides) -> ModelConfig:
    """The tiny detector every test builds: resnet18 (frozen to layer1), hidden 32, 4 heads,
    1 encoder + 2 decoder layers, FFN 64, 7 queries, 5 classes, 3 feature levels, 2 points.

    mixed: shorthand for `mixed_supervision=MixedSupervisionConfig(enabled=mixed)`;
    overrides: any other `ModelConfig` field or method unit's section (`model.<unit>`, e.g.
    `mr_detr=MrDetrModelConfig(enabled=True)`); an unknown name is a TypeError."""
    if mixed is not None:
        overrides.setdefault("mixed_supervision", MixedSupervisionConfig(enabled=mixed))
    cfg = ModelConfig(
        num_classes=5, hidden_dim=32, nheads=4, enc_layers=1, dec_layers=2, dim_feedforward=64, dropout=0.0,
        num_queries=7, num_feature_levels=3, enc_n_points=2, dec_n_points=2,
        backbone=BackboneConfig(name="resnet18", freeze_at="layer1"),
    )
    sections = {name: overrides.pop(name) for name in list(overrides) if name in cfg.units.names()}
    cfg = replace(cfg, **overrides)
    for name, section in sections.items():
        setattr(cfg, name, section)
    return cfg


def model_overrides(cfg: ModelConfig, fields: list[str]) -> list[str]:
    """`model.<field>=<value>` override strings (for `--set` / `load_config`) of `cfg`'s `fields`."""
    return [f"model.{name}={getattr(cfg, name)}" for name in fields]


def tiny_run_config(
    tmp_path: Path | None = None,
    *,
    train_images: int = 8,
    val_images: int = 4,
    epochs: int = 2,
    batch_size: int = 2,
    mixed: bool = True,
    **train_overrides,
) -> Config:
    """A full run config: `tiny_model_config` with 6 classes, 2 heads, 8 queries, 2 levels, on the
    synthetic set at 64 px (cosine schedule, 2 warm-up steps, lr 1e-3, no workers, CPU).

    The synthetic set goes to `tmp_path/synthetic` when `tmp_path` is given, else to the
    session's synthetic cache (`$MSDETR_CACHE`, a session folder set by `tests/conftest.py`), so
    that runs with the same image counts generate it once. train_overrides: `TrainConfig` fields."""
    model = tiny_model_config(num_classes=6, nheads=2, num_queries=8, num_feature_levels=2, mixed=mixed)
    directory = str(tmp_path / "synthetic") if tmp_path is not None else None
    data = DataConfig(
        synthetic=SyntheticConfig(train=train_images, val=val_images, size=TINY_SIZE, seed=0, directory=directory),
        transforms=TransformConfig(
            train_min_sizes=[48, TINY_SIZE],
            train_max_size=TINY_SIZE,
            crop_probability=0.0,
            eval_min_size=TINY_SIZE,
            eval_max_size=TINY_SIZE,
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
    train = replace(train, **train_overrides)
    return Config(
        name="test",
        model=model,
        data=data,
        supervision=SupervisionConfig(strategy="mixed" if mixed else "one_to_one"),
        train=train,
        eval=EvalConfig(topk=20),
    )


def shrunken_preset(preset: Config, **train_overrides) -> Config:
    """`preset` (a loaded preset config) at the tiny size: its method options and supervision
    as they are; `tiny_run_config`'s sizes, data and schedule (4 + 2 images, 1 epoch, no
    visualisations); extra query groups, denoising groups and mask sizes cut down. A ResNet-18
    without pretrained weights keeps the preset's backbone options (stride-4 level, norm, freezing)."""
    m = preset.model
    small = tiny_run_config(train_images=4, val_images=2, epochs=1, mixed=m.mixed_supervision.enabled,
                            vis_images=0, **train_overrides)
    tiny = small.model
    model = replace(
        m, num_classes=tiny.num_classes, hidden_dim=tiny.hidden_dim, nheads=tiny.nheads,
        enc_layers=tiny.enc_layers, dec_layers=tiny.dec_layers, dim_feedforward=tiny.dim_feedforward,
        dropout=0.0, num_queries=tiny.num_queries, num_feature_levels=tiny.num_feature_levels,
        enc_n_points=tiny.enc_n_points, dec_n_points=tiny.dec_n_points,
        backbone=replace(m.backbone, name="resnet18", weights=None),
        hybrid=replace(m.hybrid, num_queries=min(m.hybrid.num_queries, 3 * tiny.num_queries)),
        group=replace(m.group, num_groups=min(m.group.num_groups, 3)),
        denoising=replace(m.denoising, dn_number=2, num_groups=2),
        mask_head=replace(m.mask_head, mask_dim=16),
    )
    masks = preset.supervision.masks
    supervision = replace(preset.supervision, masks=replace(masks, num_points=128, matcher_points=128))
    return replace(small, name=preset.name, model=model, supervision=supervision)


def pad_batch(images: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(3, h, w) images -> (batch (B, 3, H, W) zero-padded bottom / right to the largest h and w,
    pixel_mask (B, H, W) True on padding), as the official DETR batching."""
    hmax, wmax = max(im.shape[1] for im in images), max(im.shape[2] for im in images)
    batch = torch.zeros(len(images), 3, hmax, wmax)
    mask = torch.ones(len(images), hmax, wmax, dtype=torch.bool)
    for i, im in enumerate(images):
        batch[i, :, : im.shape[1], : im.shape[2]] = im
        mask[i, : im.shape[1], : im.shape[2]] = False
    return batch, mask


def padded_batch(sizes: list[tuple[int, int]], seed: int = 0) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
    """Random images of the given (h, w), batched with `pad_batch`. Returns (images, batch, pixel_mask)."""
    g = torch.Generator().manual_seed(seed)
    images = [torch.randn(3, h, w, generator=g) for h, w in sizes]
    return (images, *pad_batch(images))


def final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    """The weights being trained in `run_dir/last.pt` (raw ones when EMA is on)."""
    ckpt = torch.load(run_dir / "last.pt", map_location="cpu", weights_only=False)
    return ckpt["train_state"].get("raw_model", ckpt["model"])
