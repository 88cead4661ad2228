"""One optimizer step: micro-batches through forward, loss and backward, then clip and update.

Gradient accumulation: the step's `accumulate_steps` micro-batches each back-propagate
loss / accumulate_steps (DDP synchronizes only on the last one), every micro-batch's loss
normalized by the same N: the step's target count averaged over ranks and micro-batches
(`losses.normalization.step_target_count`, one all-reduce a step). So n micro-batches on R
processes give exactly the gradient of the same images as one batch on n * R processes (as
the official code normalizes: every term divided by the count averaged over all GPUs; see
docs/training.md). A micro-batch whose loss
is not finite on any rank is not back-propagated, and the whole step is skipped (gradients
dropped, nothing updated) on every rank alike; so is a step whose gradient norm is not
finite (without the fp16 scaler, which handles overflow itself by skipping and lowering
its scale).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from msdetr.data.collate import Batch
from msdetr.engine import distributed
from msdetr.engine.amp import autocast
from msdetr.losses.criterion import Criterion
from msdetr.losses.normalization import step_target_count


@dataclass
class StepResult:
    """What a step did: `ok` False when skipped; `loss` the mean weighted loss of its finite
    micro-batches (nan when none); `terms` the mean unweighted terms; `bad_terms` the names
    of non-finite terms; `grad_norm` before clipping (nan when not computed)."""

    ok: bool
    loss: float
    terms: dict[str, float] = field(default_factory=dict)
    bad_terms: list[str] = field(default_factory=list)
    grad_norm: float = float("nan")


def _maybe_no_sync(model: nn.Module, sync: bool):
    if isinstance(model, DistributedDataParallel) and not sync:
        return model.no_sync()
    return contextlib.nullcontext()


def train_step(
    model: nn.Module,
    criterion: nn.Module,
    batches: list[Batch],
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    device: torch.device,
    amp: str,
    clip_max_norm: float,
) -> StepResult:
    """Run one optimizer step over `batches` (the micro-batches, already on `device`)."""
    optimizer.zero_grad(set_to_none=True)
    n = len(batches)
    losses, term_sums, bad_terms, ok = [], {}, [], True
    # one normalizer for the whole step (a criterion of another kind normalizes on its own)
    shared = {}
    if isinstance(criterion, Criterion):
        shared["target_count"] = step_target_count([batch.targets for batch in batches], device)
    for i, batch in enumerate(batches):
        with _maybe_no_sync(model, sync=i == n - 1):
            with autocast(amp, device):
                output = model(batch.images, batch.pixel_mask, targets=batch.targets)
            result = criterion(output, batch.targets, **shared)  # float32 inside, autocast off
            finite = bool(torch.isfinite(result.total).item())
            if not distributed.all_true(finite, device):
                ok = False
                bad_terms += [k for k, v in result.terms.items() if not torch.isfinite(v).all()]
                continue
            scaler.scale(result.total / n).backward()
        losses.append(float(result.total.detach()))
        for key, value in result.term_values().items():  # one transfer for all terms
            term_sums[key] = term_sums.get(key, 0.0) + value
    loss = sum(losses) / len(losses) if losses else float("nan")
    terms = {k: v / len(losses) for k, v in term_sums.items()} if losses else {}
    if not ok:
        optimizer.zero_grad(set_to_none=True)
        return StepResult(False, loss, terms, sorted(set(bad_terms)) or ["total"])
    scaler.unscale_(optimizer)
    params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
    max_norm = clip_max_norm if clip_max_norm > 0 else math.inf
    grad_norm = float(torch.nn.utils.clip_grad_norm_(params, max_norm))
    if not scaler.is_enabled() and not math.isfinite(grad_norm):
        optimizer.zero_grad(set_to_none=True)
        return StepResult(False, loss, terms, ["gradient norm"], grad_norm)
    scaler.step(optimizer)
    scaler.update()
    return StepResult(True, loss, terms, [], grad_norm)
