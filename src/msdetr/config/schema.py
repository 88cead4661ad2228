"""The top-level typed configuration of a run: model, data, supervision, train and eval sections.

Every field has a default, so a YAML file only states what differs. `msdetr.config.loader`
reads presets (with `base:` inheritance) and `--set key=value` overrides into a `Config`;
unknown keys are errors that name the key and the file.

Learning rates and the total batch size: the learning rates in `train.optimizer` are the
values for a total batch of `train.reference_batch_size` images per optimizer step. The
actual total batch is `train.batch_size * world_size * train.accumulate_steps`; when it
differs, every learning rate is multiplied by (actual / reference) for `lr_scaling: linear`,
by sqrt(actual / reference) for `sqrt`, and left as is for `none`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from msdetr.config.data import DataConfig
from msdetr.config.model import ModelConfig
from msdetr.config.supervision import SupervisionConfig


@dataclass
class OptimizerConfig:
    """AdamW with three parameter groups (official Deformable DETR recipe).

    lr: everything that is neither backbone nor linear projection.
    lr_backbone: parameters whose name starts with `backbone.`.
    lr_linear_proj_mult: factor on `lr` for parameters whose name contains one of
        `linear_proj_names` (deformable attention sampling offsets and reference points).
    """

    lr: float = 2e-4
    lr_backbone: float = 2e-5
    lr_linear_proj_mult: float = 0.1
    linear_proj_names: list[str] = field(default_factory=lambda: ["sampling_offsets", "reference_points"])
    weight_decay: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)


@dataclass
class ScheduleConfig:
    """Learning-rate schedule, evaluated per optimizer step.

    name: "step" multiplies by `drop_factor` at the start of each epoch in `drop_epochs`
        (official: [11] of 12 epochs); "cosine" decays from 1 to `min_factor` over the run.
    warmup_steps: linear warmup from `warmup_start_factor` to 1 over this many optimizer steps.
    """

    name: Literal["step", "cosine"] = "step"
    drop_epochs: list[int] = field(default_factory=lambda: [11])
    drop_factor: float = 0.1
    min_factor: float = 0.01
    warmup_steps: int = 0
    warmup_start_factor: float = 0.001


@dataclass
class EmaConfig:
    """Exponential moving average of the weights.

    decay: final decay; the effective decay ramps up as decay * (1 - exp(-updates / warmup_steps)).
    When enabled, evaluation, `best.pt` and the checkpoint's `model` use the averaged weights.
    """

    enabled: bool = False
    decay: float = 0.9998
    warmup_steps: int = 2000


@dataclass
class TrainConfig:
    """How to train.

    batch_size: images per process (per GPU) and micro-step.
    accumulate_steps: micro-steps per optimizer step (gradient accumulation).
    reference_batch_size: the total batch the learning rates are tuned for (see module doc).
    clip_max_norm: gradient clipping by global norm (0 disables).
    amp: "none", "bf16" (autocast) or "fp16" (autocast and a gradient scaler). Matching,
        losses and deformable attention sampling always run in float32.
    max_nonfinite_steps: stop with an error after this many non-finite losses in a row
        (each one skips its optimizer step and is counted).
    deterministic: torch deterministic algorithms (slower); with a fixed seed a run and its
        resumption give the same weights.
    device: "auto" (cuda when available, else mps, else cpu), "cpu", "cuda", "cuda:1", "mps".
    num_threads: CPU threads for torch (None: torch's default).
    max_steps: stop after this many optimizer steps (None: run all epochs).
    time_limit_minutes: a wall-time budget for the whole run, counted from the process start
        (data generation and the final evaluation included; None: no budget). After a few warm-up
        steps the measured time per step sets the number of optimizer steps (`epochs` is then
        ignored; `max_steps` still caps it) so that the learning-rate schedule completes and the
        evaluations due still fit; the plan is revised as training goes (`engine/time_budget.py`).
    checkpoint_every_steps: also write `last.pt` every N optimizer steps inside an epoch, so a crash
        loses at most N steps (0: only at the end of each epoch). `--resume` continues from the
        exact batch.
    eval_every: evaluate every N epochs (and always after the last); 0: only after the last.
    num_workers: data loading processes per training process (None: `data.num_workers`).
    vis_images / vis_score_threshold: validation images drawn with predicted boxes at the end.
    compile: torch.compile the model and the criterion's loss arithmetic for training
        (`msdetr.engine.compile`); the first steps are slower while it compiles.
    compile_backend: the torch.compile backend: "inductor" (default; needs a C++ compiler on
        the CPU), "aot_eager" (no compiler), ...
    tensorboard: also write every number of `metrics.jsonl` as a TensorBoard scalar into
        `<run>/tensorboard` (needs the `tensorboard` extra; `engine/metrics_log.py`).
    best_metric: the evaluation number that picks `best.pt` and heads the reports: "auto" (segm mAP
        for a model with a mask head, else bbox mAP) or a COCO number such as "bbox_mAP_50" or
        "segm_mAP" (`engine/best_metric.py`).
    """

    epochs: int = 12
    batch_size: int = 2
    accumulate_steps: int = 1
    reference_batch_size: int = 16
    lr_scaling: Literal["linear", "sqrt", "none"] = "linear"
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    clip_max_norm: float = 0.1
    amp: Literal["none", "bf16", "fp16"] = "none"
    ema: EmaConfig = field(default_factory=EmaConfig)
    max_nonfinite_steps: int = 20
    seed: int = 42
    deterministic: bool = False
    device: str = "auto"
    num_threads: int | None = None
    max_steps: int | None = None
    time_limit_minutes: float | None = None
    checkpoint_every_steps: int = 1000
    eval_every: int = 1
    log_every: int = 20
    progress: bool = True
    tensorboard: bool = False
    num_workers: int | None = None
    vis_images: int = 4
    vis_score_threshold: float = 0.3
    compile: bool = False
    compile_backend: str = "inductor"
    best_metric: str = "auto"


@dataclass
class EvalConfig:
    """How to evaluate: COCO box metrics on the validation split.

    batch_size: images per process (None: `train.batch_size`).
    topk: detections kept per image (official: 100; 300 for the 900-query recipe).
    nms_iou: optional class-wise NMS before the top-k (official: none).
    """

    batch_size: int | None = None
    topk: int = 100
    nms_iou: float | None = None


@dataclass
class Config:
    """A complete run: every section has defaults (the official COCO recipe)."""

    name: str = "run"
    description: str = ""
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    supervision: SupervisionConfig = field(default_factory=SupervisionConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
