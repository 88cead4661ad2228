"""The training loop: data, model, supervision, optimizer and schedule from one `Config`.

`Trainer(cfg, ...).fit()` trains for `train.epochs` epochs (or `train.max_steps` optimizer
steps), evaluates COCO box metrics after every `train.eval_every` epochs and at the end,
and keeps `last.pt` (resumable) and `best.pt` (best bbox mAP) in the run folder, with the
resolved `config.yaml`, `metrics.jsonl`, `train.log`, `loss.png`, `map.png` and a few
validation images with predicted boxes in `predictions/`. Under `torchrun` it trains with
DistributedDataParallel; only rank 0 writes.

Exact resumption: the state after every optimizer step is (weights, optimizer, scaler, EMA,
step, samples seen in the epoch, every rank's RNG states); data order and augmentation depend
only on (seed, epoch, index). With `train.deterministic` a resumed run ends with the same
weights as an uninterrupted one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from msdetr.config.loader import save_config
from msdetr.config.schema import Config
from msdetr.engine import distributed
from msdetr.engine.amp import check_amp, make_scaler
from msdetr.engine.checkpoint import BEST, LAST, save_checkpoint
from msdetr.engine.compile import compile_criterion, compile_model
from msdetr.engine.curves import save_curves
from msdetr.engine.data_setup import (
    build_train_loader,
    build_val_loader,
    crowded_images_warning,
    pin_memory_for,
    prepare_datasets,
)
from msdetr.engine.device import resolve_device
from msdetr.engine.ema import ModelEma
from msdetr.engine.init_backbone import init_backbone_from_checkpoint
from msdetr.engine.init_weights import init_from_checkpoint
from msdetr.engine.metrics_log import MetricsLog, truncate_after
from msdetr.engine.nonfinite import NonFiniteGuard
from msdetr.engine.optim import build_optimizer, lr_scale, total_batch_size
from msdetr.engine.progress import EpochProgress
from msdetr.engine.run_dir import setup_logger
from msdetr.engine.schedule import LrSchedule
from msdetr.engine.seeding import rng_state, seed_everything, set_deterministic, set_rng_state
from msdetr.engine.step import StepResult, train_step
from msdetr.engine.time_budget import FINISH_RESERVE_S, EvalCounter, TimeBudget
from msdetr.engine.visualize import draw_validation_predictions
from msdetr.errors import MsdetrError
from msdetr.evaluation.coco_eval import CocoEvaluator, CocoMetrics
from msdetr.evaluation.evaluate import evaluate
from msdetr.losses.build import build_criterion
from msdetr.modeling.build import build_model

StepCallback = Callable[["Trainer", StepResult], None]


@dataclass
class TrainResult:
    """Outcome of `Trainer.fit()`: final metrics (the last evaluation's record), best bbox mAP,
    optimizer steps done, steps skipped for non-finite values, wall time in seconds, and whether
    this process is rank 0."""

    run_dir: Path
    metrics: dict[str, Any] = field(default_factory=dict)
    best_map: float = -1.0
    steps: int = 0
    skipped_steps: int = 0
    wall_s: float = 0.0
    is_main: bool = True


class Trainer:
    """Trains `cfg` into `run_dir`.

    resume: a `last.pt` checkpoint dict (see `msdetr.engine.checkpoint`) to continue from;
        `cfg` must be its config (possibly with changed training settings).
    init_weights: a checkpoint file (ours or official) to start the weights from.
    init_backbone: a checkpoint (ours, official, or a torchvision ResNet state dict) whose backbone
        weights replace the model's (after `init_weights`); the rest keeps its initialization.
    callbacks: called after every optimizer step with (trainer, StepResult).
    started_at: `time.time()` at which the run's time budget (`train.time_limit_minutes`) starts
        counting (the CLI passes the process start); None: when `fit()` is called.
    """

    def __init__(
        self,
        cfg: Config,
        run_dir: str | Path,
        resume: dict[str, Any] | None = None,
        init_weights: str | Path | None = None,
        init_backbone: str | Path | None = None,
        callbacks: Sequence[StepCallback] = (),
        verbose: bool = True,
        started_at: float | None = None,
    ):
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.resume_state = resume
        self.init_weights = init_weights
        self.init_backbone = init_backbone
        self.callbacks = list(callbacks)
        self.verbose = verbose
        self.started_at = started_at
        self.budget: TimeBudget | None = None
        self._budget_logged = False
        self.epoch = 0
        self.step = 0
        self.samples_in_epoch = 0
        self.best_map = -1.0
        self.last_metrics: dict[str, Any] = {}

    # ------------------------------------------------------------------ setup
    def _setup(self) -> None:
        cfg, t = self.cfg, self.cfg.train
        if t.num_threads:
            torch.set_num_threads(t.num_threads)
        self.device = resolve_device(t.device)
        self.dist = distributed.init_from_env(self.device.type)
        if self.dist.enabled and self.device.type == "cuda":
            self.device = resolve_device("cuda", self.dist.local_rank)
        check_amp(t.amp, self.device)
        self.is_main = self.dist.is_main
        self.log = setup_logger(self.run_dir if self.is_main else None, self.is_main, self.verbose)
        set_deterministic(t.deterministic, self.device.type)
        seed_everything(t.seed + self.dist.rank)

        # masks reach the targets only when the model has a mask head (box-only runs skip decoding them)
        self.train_set, self.val_set = prepare_datasets(
            replace(cfg.data, masks=cfg.data.masks or cfg.model.mask_head.enabled))
        crowded = crowded_images_warning(self.train_set, cfg.model.num_queries)
        if crowded and self.is_main:
            self.log.warning(crowded)
        num_classes = self.train_set.num_classes
        if cfg.model.num_classes != num_classes:
            if self.resume_state is not None:
                raise MsdetrError(
                    f"data: the training data has {num_classes} classes but the resumed run's "
                    f"model has {cfg.model.num_classes}; resume with the same data"
                )
            self.log.info("model.num_classes: %d -> %d (from the training data)", cfg.model.num_classes, num_classes)
            self.cfg = cfg = replace(cfg, model=replace(cfg.model, num_classes=num_classes))
        self.class_names = self.train_set.class_names
        self.category_ids = self.train_set.label_to_category_id

        workers = cfg.data.num_workers if t.num_workers is None else t.num_workers
        pin = pin_memory_for(self.device)
        self.train_loader = build_train_loader(self.train_set, t.batch_size, workers, t.seed, pin)
        eval_bs = cfg.eval.batch_size or t.batch_size
        self.val_loader = build_val_loader(self.val_set, eval_bs, workers, pin)
        batches = self.train_loader.batch_sampler.batches_per_epoch
        self.steps_per_epoch = batches // t.accumulate_steps
        if self.steps_per_epoch == 0:
            raise MsdetrError(
                f"train.accumulate_steps: {t.accumulate_steps} micro-batches per step but an "
                f"epoch has only {batches}; lower it or train.batch_size"
            )
        self.total_steps = self.steps_per_epoch * t.epochs
        if t.max_steps is not None:
            self.total_steps = min(self.total_steps, t.max_steps)
        schedule_steps = self.steps_per_epoch * t.epochs
        if t.time_limit_minutes is not None:  # the number of steps follows from the time per step
            planned = (self.resume_state or {}).get("train_state", {}).get("time_budget_steps")
            if planned is not None:  # a resumed budgeted run finishes the schedule it planned
                self.total_steps = schedule_steps = int(planned)
            else:
                self.budget = TimeBudget(t.time_limit_minutes * 60.0, self._fit_start)
                self.total_steps = t.max_steps if t.max_steps is not None else 10**9

        self.model = build_model(cfg.model)
        if self.init_weights is not None and self.resume_state is None:
            report = init_from_checkpoint(self.model, self.init_weights)
            self.log.info("init weights from %s: %s", self.init_weights, report.summary())
        if self.init_backbone is not None and self.resume_state is None:
            report = init_backbone_from_checkpoint(self.model, self.init_backbone)
            self.log.info("init backbone from %s: %s", self.init_backbone, report.summary())
        self.model.to(self.device)
        self.criterion = build_criterion(cfg.supervision, cfg.model.num_classes,
                                         with_masks=cfg.model.mask_head.enabled)
        self.optimizer = build_optimizer(self.model, t, self.dist.world_size)
        self.schedule = LrSchedule(self.optimizer, t.schedule, self.steps_per_epoch, schedule_steps)
        self.scaler = make_scaler(t.amp, self.device)
        self.ema = ModelEma(self.model, t.ema.decay, t.ema.warmup_steps) if t.ema.enabled else None
        self.guard = NonFiniteGuard(t.max_nonfinite_steps)
        if self.resume_state is not None:
            self._restore(self.resume_state)
        self.ddp_model: nn.Module = self.model
        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.ddp_model = DistributedDataParallel(self.model, device_ids=ids)
        if t.compile:  # train.compile: the training forward and the loss arithmetic (engine/compile.py)
            self.ddp_model = compile_model(self.ddp_model, t.compile_backend)
            compile_criterion(self.criterion, t.compile_backend)
        self.metrics = MetricsLog(self.run_dir, enabled=self.is_main, tensorboard=t.tensorboard)
        if self.is_main:
            save_config(self.cfg, self.run_dir / "config.yaml")
        self._log_setup()

    def _log_setup(self) -> None:
        t = self.cfg.train
        total = total_batch_size(t, self.dist.world_size)
        scale = lr_scale(t, self.dist.world_size)
        self.log.info("run folder: %s", self.run_dir)
        self.log.info(
            "data: train %s (%d images), val %s (%d images), %d classes",
            self.train_set.annotation_file,
            len(self.train_set),
            self.val_set.annotation_file,
            len(self.val_set),
            self.cfg.model.num_classes,
        )
        self.log.info(
            "device %s, %d process(es); total batch %d = %d per process x %d x %d accumulation; "
            "learning rates x%.3g (reference batch %d, %s scaling)",
            self.device,
            self.dist.world_size,
            total,
            t.batch_size,
            self.dist.world_size,
            t.accumulate_steps,
            scale,
            t.reference_batch_size,
            t.lr_scaling,
        )
        params = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        steps = "the number of steps set by the time budget" if self.budget is not None else f"{self.total_steps} steps"
        self.log.info(
            "model: %.2fM trainable parameters; %d steps per epoch, %s in all",
            params / 1e6,
            self.steps_per_epoch,
            steps,
        )
        if self.resume_state is not None:
            self.log.info("resumed at epoch %d, step %d", self.epoch + 1, self.step)

    # ------------------------------------------------------------------ state
    def _weights_for_eval(self) -> nn.Module:
        return self.ema.module if self.ema is not None else self.model

    def _train_state(self) -> dict[str, Any]:
        rng = distributed.gather_to_main(rng_state())
        state = {
            "epoch": self.epoch,
            "step": self.step,
            "samples_in_epoch": self.samples_in_epoch,
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "scaler": self.scaler.state_dict(),
            "nonfinite": self.guard.state_dict(),
            "rng": rng,
            "best_map": self.best_map,
            "world_size": self.dist.world_size,
        }
        if self.cfg.train.time_limit_minutes is not None:
            state["time_budget_steps"] = self.schedule.total_steps
        if self.ema is not None:
            state["ema_updates"] = self.ema.updates
            state["raw_model"] = self.model.state_dict()
        return state

    def _restore(self, ckpt: dict[str, Any]) -> None:
        state = ckpt["train_state"]
        raw = state.get("raw_model", ckpt["model"])
        self.model.load_state_dict(raw)
        if self.ema is not None:
            if "raw_model" in state:
                self.ema.module.load_state_dict(ckpt["model"])
                self.ema.updates = int(state.get("ema_updates", 0))
            else:
                self.ema = ModelEma(self.model, self.cfg.train.ema.decay, self.cfg.train.ema.warmup_steps)
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.scaler.load_state_dict(state["scaler"])
        self.guard.load_state_dict(state["nonfinite"])
        self.epoch, self.step = int(state["epoch"]), int(state["step"])
        self.samples_in_epoch = int(state["samples_in_epoch"])
        self.best_map = float(state["best_map"])
        self.last_metrics = dict(ckpt.get("metrics") or {})
        rngs = state.get("rng") or []
        if int(state.get("world_size", 1)) == self.dist.world_size and self.dist.rank < len(rngs):
            set_rng_state(rngs[self.dist.rank])
        else:
            self.log.warning(
                "resuming with %d processes instead of %d: random streams restart from the seed",
                self.dist.world_size,
                state.get("world_size", 1),
            )
            seed_everything(self.cfg.train.seed + self.dist.rank + self.step)
        if self.is_main:
            truncate_after(self.run_dir, self.step)

    def save(self, with_state: bool = True) -> None:
        """Write `last.pt` (collective: every rank must call it)."""
        state = self._train_state() if with_state else None
        if self.is_main:
            save_checkpoint(
                self.run_dir / LAST,
                self.cfg,
                self._weights_for_eval().state_dict(),
                self.class_names,
                self.category_ids,
                self.last_metrics,
                state,
            )
        distributed.barrier()

    # ------------------------------------------------------------------ loop
    def fit(self) -> TrainResult:
        start = time.time()
        self._fit_start = self.started_at if self.started_at is not None else start
        self._setup()
        t = self.cfg.train
        try:
            while self.step < self.total_steps:
                self._train_epoch()
                epoch_done = self.samples_in_epoch == 0  # else stopped inside the epoch (max_steps)
                finished = self.step >= self.total_steps
                due = epoch_done and t.eval_every > 0 and self.epoch % t.eval_every == 0
                if finished or due:
                    tic = time.time()
                    self._evaluate_and_keep_best()
                    if self.budget is not None:
                        self.budget.note_eval(time.time() - tic)
                self.save()
            self._finish()
        finally:
            if hasattr(self, "metrics"):
                self.metrics.close()
        return TrainResult(
            self.run_dir,
            dict(self.last_metrics),
            self.best_map,
            self.step,
            self.guard.total,
            time.time() - start,
            self.is_main,
        )

    def _train_epoch(self) -> None:
        t = self.cfg.train
        epoch = self.epoch
        per_batch = t.batch_size * self.dist.world_size
        skip = self.samples_in_epoch // per_batch
        self.train_loader.batch_sampler.set_epoch(epoch, skip)
        done_in_epoch = skip // t.accumulate_steps
        self.model.train()
        progress = EpochProgress(
            self.steps_per_epoch,
            epoch,
            t.epochs,
            enabled=self.is_main and t.progress and self.verbose,
            initial=done_in_epoch,
        )
        window: list[float] = []
        term_sums: dict[str, float] = {}
        term_count = 0
        tic = time.time()
        micro: list = []
        for batch in self.train_loader:
            micro.append(batch.to(self.device, non_blocking=True))
            if len(micro) < t.accumulate_steps:
                continue
            factor = self.schedule.apply(self.step)
            result = train_step(
                self.ddp_model,
                self.criterion,
                micro,
                self.optimizer,
                self.scaler,
                self.device,
                t.amp,
                t.clip_max_norm,
            )
            micro = []
            self.guard.record(result.ok, self.step + 1, result.bad_terms)
            if result.ok and self.ema is not None:
                self.ema.update(self.model)
            self.step += 1
            self.samples_in_epoch += per_batch * t.accumulate_steps
            if result.ok:
                window.append(result.loss)
                for k, v in result.terms.items():
                    term_sums[k] = term_sums.get(k, 0.0) + v
                term_count += 1
            lr = self.optimizer.param_groups[0]["lr"]
            progress.update(result.loss, lr, self.guard.total)
            if self.step % t.log_every == 0:
                self._log_train(epoch, window, lr, factor, result, time.time() - tic)
                window, tic = [], time.time()
            for callback in self.callbacks:
                callback(self, result)
            if self.budget is not None:
                self._follow_time_budget()
            if self.step % self.steps_per_epoch == 0:  # epoch complete
                self.epoch += 1
                self.samples_in_epoch = 0
            if self.samples_in_epoch == 0 or self.step >= self.total_steps:
                break
            if t.checkpoint_every_steps and self.step % t.checkpoint_every_steps == 0:
                self.save()
        progress.close()
        terms = distributed.mean_over_ranks({k: v / max(term_count, 1) for k, v in term_sums.items()}, self.device)
        self.metrics.write("epoch", self.step, epoch, {"skipped_steps": self.guard.total, **terms})

    def _follow_time_budget(self) -> None:
        """Set (after warm-up) and revise the number of steps from the measured step time, so
        that the run ends inside `train.time_limit_minutes`; the schedule follows the total."""
        assert self.budget is not None
        t = self.cfg.train
        now = time.time()
        counter = EvalCounter(self.step, self.steps_per_epoch, t.eval_every)
        plan = self.budget.after_step(self.step, now, len(self.val_loader), counter)
        if plan is not None:
            first = not self._budget_logged
            total = plan.total_steps if t.max_steps is None else min(plan.total_steps, t.max_steps)
            total = distributed.broadcast_from_main(total)  # every rank plans at the same steps
            self.total_steps = max(total, self.step)
            self.schedule.total_steps = max(self.total_steps, 1)
            if first:
                self.log.info(
                    "time budget %.1f min: %.2f s per step after %d steps, %.0f s left -> %d steps in all "
                    "(%d evaluation(s) of about %.1f s)",
                    t.time_limit_minutes,
                    plan.step_s,
                    self.step,
                    plan.seconds_left,
                    self.total_steps,
                    plan.evals_left,
                    plan.eval_s,
                )
                self._budget_logged = True
        elif self.budget.plan is not None and not self.dist.enabled:  # between plans, single process only
            step_s = max(self.budget.step_time(self.step, now) or 0.0, self.budget.plan.step_s)
            reserve = self.budget.plan.eval_s * self.budget.plan.evals_left + FINISH_RESERVE_S
            if self.budget.time_left(now) - reserve < step_s and self.total_steps > self.step:
                self.log.warning("time budget: stopping at step %d to leave time for the evaluation", self.step)
                self.total_steps = self.step

    def _log_train(
        self, epoch: int, window: list[float], lr: float, factor: float, result: StepResult, seconds: float
    ) -> None:
        t = self.cfg.train
        values = {"loss": sum(window) / len(window) if window else float("nan")}
        values = distributed.mean_over_ranks(values, self.device)
        values.update(
            {
                "lr": lr,
                "lr_factor": factor,
                "grad_norm": result.grad_norm,
                "skipped_steps": self.guard.total,
                "s_per_step": seconds / t.log_every,
            }
        )
        self.metrics.write("train", self.step, epoch, values)
        if not (t.progress and self.verbose):
            self.log.info(
                "epoch %d step %d/%d loss %.4f lr %.2e",
                epoch + 1,
                self.step,
                self.total_steps,
                values["loss"],
                lr,
            )

    def _evaluate_and_keep_best(self) -> CocoMetrics:
        cfg = self.cfg
        evaluator = CocoEvaluator(self.val_set.annotation_file, self.category_ids)
        metrics = evaluate(
            self._weights_for_eval(),
            self.val_loader,
            evaluator,
            self.device,
            cfg.train.amp,
            cfg.eval.topk,
            cfg.eval.nms_iou,
        )
        record = metrics.as_record()
        self.last_metrics = record
        epoch = self.epoch - 1 if self.samples_in_epoch == 0 else self.epoch  # the epoch just trained
        self.metrics.write("eval", self.step, epoch, record)
        self.log.info(
            "epoch %d: bbox mAP %.4f, mAP@0.5 %.4f, mAP@0.75 %.4f (%d val images)",
            epoch + 1,
            metrics.stats["bbox_mAP"],
            metrics.stats["bbox_mAP_50"],
            metrics.stats["bbox_mAP_75"],
            metrics.num_images,
        )
        if "segm_mAP" in metrics.stats:  # mask head
            self.log.info("epoch %d: segm mAP %.4f, mAP@0.5 %.4f, mAP@0.75 %.4f", epoch + 1,
                          metrics.stats["segm_mAP"], metrics.stats["segm_mAP_50"], metrics.stats["segm_mAP_75"])
        if metrics.stats["bbox_mAP"] > self.best_map:
            self.best_map = metrics.stats["bbox_mAP"]
            if self.is_main:
                save_checkpoint(
                    self.run_dir / BEST,
                    cfg,
                    self._weights_for_eval().state_dict(),
                    self.class_names,
                    self.category_ids,
                    record,
                )
        return metrics

    # ------------------------------------------------------------------ end
    def _finish(self) -> None:
        if self.is_main:
            save_curves(self.run_dir)
            if self.cfg.train.vis_images:
                draw_validation_predictions(
                    self._weights_for_eval(),
                    self.val_set,
                    self.cfg.train.vis_images,
                    self.run_dir / "predictions",
                    self.device,
                    self.cfg.train.amp,
                    self.cfg.train.vis_score_threshold,
                )
            if self.last_metrics:
                stats = {k: v for k, v in self.last_metrics.items() if k.startswith("bbox_")}
                (self.run_dir / "metrics_final.txt").write_text(
                    "\n".join(f"{k}: {v:.4f}" for k, v in stats.items()) + "\n"
                )
            self.log.info(
                "done: %d steps (%d skipped), best bbox mAP %.4f; files in %s",
                self.step,
                self.guard.total,
                self.best_map,
                self.run_dir,
            )
        distributed.barrier()
