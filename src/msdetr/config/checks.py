"""Checks of a whole `Config` when it loads: value ranges and options that need each other.

Every check gives a `Problem`: the dotted keys involved (the one at fault first) and one
sentence saying what is wrong and what to do, without the location; the loader prefixes
the file or `--set` the value came from (`msdetr.config.origins`).

Each method unit checks its own options (`MethodUnit.checks`, e.g. a model part and its
supervision that must agree: a part nobody supervises costs training time and learns nothing;
supervision of a part the model lacks fails at the first step or does nothing). Here:
  an enabled extra stream (one_to_many, hybrid, group, denoising, dac, mask head) needs a
  non-zero loss weight; supervision.classification_loss.<stream> other than focal needs the stream.
"""

from __future__ import annotations

import math

from msdetr.config.model import BACKBONE_NAMES
from msdetr.config.problem import Problem, out_of_range, ranges
from msdetr.config.schema import Config
from msdetr.methods.registry import registered

__all__ = ["Problem", "config_problems", "out_of_range"]


def config_problems(cfg: Config) -> list[Problem]:
    """Every problem of `cfg`, the most basic first (ranges before pairs)."""
    return [
        *train_eval_problems(cfg),
        *model_problems(cfg),
        *data_problems(cfg),
        *supervision_problems(cfg),
        *method_problems(cfg),
        *stream_problems(cfg),
    ]


def train_eval_problems(cfg: Config) -> list[Problem]:
    t = cfg.train
    return ranges([
        (t.epochs >= 1, "train.epochs", t.epochs, ">= 1"),
        (t.batch_size >= 1, "train.batch_size", t.batch_size, ">= 1"),
        (t.accumulate_steps >= 1, "train.accumulate_steps", t.accumulate_steps, ">= 1"),
        (t.reference_batch_size >= 1, "train.reference_batch_size", t.reference_batch_size, ">= 1"),
        (t.optimizer.lr > 0, "train.optimizer.lr", t.optimizer.lr, "> 0"),
        (t.optimizer.lr_backbone >= 0, "train.optimizer.lr_backbone", t.optimizer.lr_backbone, ">= 0"),
        (t.optimizer.lr_linear_proj_mult >= 0, "train.optimizer.lr_linear_proj_mult",
         t.optimizer.lr_linear_proj_mult, ">= 0"),
        (t.optimizer.weight_decay >= 0, "train.optimizer.weight_decay", t.optimizer.weight_decay, ">= 0"),
        (all(math.isfinite(b) and 0 <= b < 1 for b in t.optimizer.betas), "train.optimizer.betas",
         t.optimizer.betas, "two numbers in [0, 1)"),
        (t.clip_max_norm >= 0, "train.clip_max_norm", t.clip_max_norm, ">= 0 (0 disables clipping)"),
        (t.max_nonfinite_steps >= 1, "train.max_nonfinite_steps", t.max_nonfinite_steps, ">= 1"),
        (t.schedule.warmup_steps >= 0, "train.schedule.warmup_steps", t.schedule.warmup_steps, ">= 0"),
        (0 < t.schedule.warmup_start_factor <= 1, "train.schedule.warmup_start_factor",
         t.schedule.warmup_start_factor, "in (0, 1]"),
        (0 <= t.schedule.min_factor <= 1, "train.schedule.min_factor", t.schedule.min_factor, "in [0, 1]"),
        (0 < t.schedule.drop_factor <= 1, "train.schedule.drop_factor", t.schedule.drop_factor, "in (0, 1]"),
        (all(e >= 1 for e in t.schedule.drop_epochs), "train.schedule.drop_epochs", t.schedule.drop_epochs,
         "epochs >= 1 (the drop applies from that 0-based epoch on)"),
        (0 < t.ema.decay < 1, "train.ema.decay", t.ema.decay, "in (0, 1)"),
        (t.ema.warmup_steps >= 0, "train.ema.warmup_steps", t.ema.warmup_steps, ">= 0"),
        (t.max_steps is None or t.max_steps >= 1, "train.max_steps", t.max_steps, ">= 1 or null"),
        (t.time_limit_minutes is None or t.time_limit_minutes > 0, "train.time_limit_minutes",
         t.time_limit_minutes, "> 0 or null"),
        (t.checkpoint_every_steps >= 0, "train.checkpoint_every_steps", t.checkpoint_every_steps, ">= 0"),
        (t.eval_every >= 0, "train.eval_every", t.eval_every, ">= 0"),
        (t.log_every >= 1, "train.log_every", t.log_every, ">= 1"),
        (t.num_threads is None or t.num_threads >= 1, "train.num_threads", t.num_threads, ">= 1 or null"),
        (t.num_workers is None or t.num_workers >= 0, "train.num_workers", t.num_workers, ">= 0 or null"),
        (t.vis_images >= 0, "train.vis_images", t.vis_images, ">= 0"),
        (0 <= t.vis_score_threshold <= 1, "train.vis_score_threshold", t.vis_score_threshold, "in [0, 1]"),
        (cfg.eval.batch_size is None or cfg.eval.batch_size >= 1, "eval.batch_size", cfg.eval.batch_size,
         ">= 1 or null"),
        (cfg.eval.topk >= 1, "eval.topk", cfg.eval.topk, ">= 1"),
        (cfg.eval.nms_iou is None or 0 < cfg.eval.nms_iou <= 1, "eval.nms_iou", cfg.eval.nms_iou,
         "in (0, 1] or null"),
    ])


def model_problems(cfg: Config) -> list[Problem]:
    """Ranges of the architecture and the combinations `msdetr.modeling.build` would refuse."""
    m = cfg.model
    problems = ranges([
        (m.num_classes >= 1, "model.num_classes", m.num_classes, ">= 1"),
        (m.num_queries >= 1, "model.num_queries", m.num_queries, ">= 1"),
        (m.hidden_dim >= 32 and m.hidden_dim % 32 == 0, "model.hidden_dim", m.hidden_dim,
         "a multiple of 32 (GroupNorm groups)"),
        (m.nheads >= 1 and m.hidden_dim % max(m.nheads, 1) == 0, "model.nheads", m.nheads,
         f">= 1 and divide model.hidden_dim ({m.hidden_dim})"),
        (m.enc_layers >= 0, "model.enc_layers", m.enc_layers, ">= 0"),
        (m.dec_layers >= 1, "model.dec_layers", m.dec_layers, ">= 1"),
        (m.dim_feedforward >= 1, "model.dim_feedforward", m.dim_feedforward, ">= 1"),
        (0 <= m.dropout < 1, "model.dropout", m.dropout, "in [0, 1)"),
        (m.num_feature_levels >= 1, "model.num_feature_levels", m.num_feature_levels, ">= 1"),
        (m.enc_n_points >= 1, "model.enc_n_points", m.enc_n_points, ">= 1"),
        (m.dec_n_points >= 1, "model.dec_n_points", m.dec_n_points, ">= 1"),
        (m.position_temperature > 0, "model.position_temperature", m.position_temperature, "> 0"),
        (m.backbone.name in BACKBONE_NAMES, "model.backbone.name", m.backbone.name,
         f"one of {', '.join(BACKBONE_NAMES)}"),
        (not (m.backbone.dilation and m.backbone.name in ("resnet18", "resnet34")), "model.backbone.dilation",
         m.backbone.dilation, f"false for {m.backbone.name} (no dilated variant)"),
        (m.hybrid.num_queries >= 0, "model.hybrid.num_queries", m.hybrid.num_queries, ">= 0 (0: no hybrid branch)"),
        (m.group.num_groups >= 1, "model.group.num_groups", m.group.num_groups, ">= 1 (1: no extra groups)"),
        (m.mask_head.mask_dim >= 1, "model.mask_head.mask_dim", m.mask_head.mask_dim, ">= 1"),
    ])
    needs = [
        (m.mixed_selection and not m.two_stage, ("model.mixed_selection", "model.two_stage"),
         "model.mixed_selection needs model.two_stage: true (content queries next to proposals)"),
        (m.look_forward_twice and not m.with_box_refine, ("model.look_forward_twice", "model.with_box_refine"),
         "model.look_forward_twice needs model.with_box_refine: true"),
        (m.anchor_queries and m.two_stage, ("model.anchor_queries", "model.two_stage"),
         "model.anchor_queries is single-stage only; set model.two_stage: false or drop the anchor queries"),
    ]
    problems += [Problem(keys, message) for bad, keys, message in needs if bad]
    return problems


def data_problems(cfg: Config) -> list[Problem]:
    d = cfg.data
    tr = d.transforms
    s = d.synthetic
    problems = ranges([
        (d.num_classes is None or d.num_classes >= 1, "data.num_classes", d.num_classes, ">= 1 or null"),
        (d.num_workers >= 0, "data.num_workers", d.num_workers, ">= 0"),
        (bool(tr.train_min_sizes) and min(tr.train_min_sizes, default=0) >= 1, "data.transforms.train_min_sizes",
         tr.train_min_sizes, "a non-empty list of sizes >= 1"),
        (tr.train_max_size >= 1, "data.transforms.train_max_size", tr.train_max_size, ">= 1"),
        (0 <= tr.flip_probability <= 1, "data.transforms.flip_probability", tr.flip_probability, "in [0, 1]"),
        (0 <= tr.crop_probability <= 1, "data.transforms.crop_probability", tr.crop_probability, "in [0, 1]"),
        (tr.crop_probability == 0 or (bool(tr.crop_resize_sizes) and min(tr.crop_resize_sizes) >= 1),
         "data.transforms.crop_resize_sizes", tr.crop_resize_sizes,
         "a non-empty list of sizes >= 1 when crop_probability > 0"),
        (tr.crop_probability == 0 or 1 <= tr.crop_min_size <= tr.crop_max_size, "data.transforms.crop_min_size",
         tr.crop_min_size, f">= 1 and <= data.transforms.crop_max_size ({tr.crop_max_size})"),
        (tr.eval_min_size >= 1, "data.transforms.eval_min_size", tr.eval_min_size, ">= 1"),
        (tr.eval_max_size >= 1, "data.transforms.eval_max_size", tr.eval_max_size, ">= 1"),
        (len(tr.mean) == 3, "data.transforms.mean", tr.mean, "three numbers (R, G, B)"),
        (len(tr.std) == 3 and all(v > 0 for v in tr.std), "data.transforms.std", tr.std,
         "three numbers > 0 (R, G, B)"),
        (s.train >= 1, "data.synthetic.train", s.train, ">= 1"),
        (s.val >= 1, "data.synthetic.val", s.val, ">= 1"),
        (s.size >= 32, "data.synthetic.size", s.size, ">= 32 (pixels)"),
    ])
    for split in ("train", "val"):
        explicit = getattr(d, split)
        if explicit.images and not explicit.annotations:
            problems.append(Problem((f"data.{split}.images", f"data.{split}.annotations"),
                                    f"data.{split}.images is set without data.{split}.annotations; set both"))
    return problems


def supervision_problems(cfg: Config) -> list[Problem]:
    """The ranges `SupervisionConfig.problems` checks, with their full dotted keys."""
    return [out_of_range(f"supervision.{key}", value, expected) for key, value, expected in cfg.supervision.problems()]


def method_problems(cfg: Config) -> list[Problem]:
    """Each registered method unit's own checks (`MethodUnit.checks`: its options' ranges, and its
    model part and its supervision coming together)."""
    return [problem for unit in registered() if unit.checks is not None for problem in unit.checks(cfg)]


def stream_problems(cfg: Config) -> list[Problem]:
    """Enabled streams with all-zero loss weights; classification losses chosen for absent streams."""
    m, s = cfg.model, cfg.supervision
    present = {
        "one_to_one": True,
        "one_to_many": s.strategy == "mixed",
        "encoder": m.two_stage,
        "hybrid": m.hybrid.num_queries > 0,
        "group": m.group.num_groups > 1,
        "denoising": m.denoising.enabled,
        "dac": m.dac.enabled,
    }
    problems = []
    switch = {
        "one_to_many": "model.mixed_supervision.enabled",
        "hybrid": "model.hybrid.num_queries",
        "group": "model.group.num_groups",
        "denoising": "model.denoising.method",
        "dac": "model.dac.enabled",
    }
    weights = s.loss_weights.as_dict()
    for stream, key in switch.items():
        w = weights[stream]
        if present[stream] and w.cls == 0 and w.bbox == 0 and w.giou == 0:
            problems.append(Problem(
                (f"supervision.loss_weights.{stream}", key),
                f"supervision.loss_weights.{stream} are all 0 but {key} turns the `{stream}` stream on: it "
                "would cost training time and learn nothing; give it loss weights or turn it off"))
    if m.mask_head.enabled:
        streams = [name for name, on in present.items() if on and name != "encoder"]  # proposals have no masks
        if all(weights[name].mask == 0 and weights[name].dice == 0 for name in streams):
            problems.append(Problem(
                ("model.mask_head.enabled", "supervision.loss_weights"),
                "model.mask_head.enabled is true but every supervision.loss_weights.<stream>.mask and .dice is 0: "
                "the mask head would learn nothing; give one_to_one mask/dice weights or disable the mask head"))
    needs = {
        "one_to_many": "supervision.strategy: mixed (MS-DETR's one-to-many stream)",
        "encoder": "model.two_stage: true (the encoder proposals)",
        "dac": "model.dac.enabled and supervision.dac.enabled (DAC-DETR's branch)",
        "hybrid": "model.hybrid.num_queries > 0 (H-DETR's extra queries)",
        "group": "model.group.num_groups > 1 (Group DETR's extra groups)",
        "denoising": "model.denoising.method (DN-DETR / DINO denoising queries)",
    }
    for stream, loss in s.classification_loss.as_dict().items():
        if loss != "focal" and not present.get(stream, True):
            problems.append(Problem(
                (f"supervision.classification_loss.{stream}",),
                f"supervision.classification_loss.{stream} is {loss!r} but the model has no `{stream}` stream, "
                f"so it would do nothing; it needs {needs.get(stream, 'the method that makes it')}, "
                "or drop the setting"))
    return problems
