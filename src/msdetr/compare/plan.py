"""The runs of a comparison: every (variant, seed) with the same data, budget and seeds.

A run's config is its variant (`BASE+METHOD...`, `msdetr.config.overlays`) with the study's
`--set` overrides, then the study's settings, which always win: the seed, the budget (a fixed
number of optimizer steps, or minutes of wall time per run), the device, threads, no progress
bar and no validation images. Its request (config, budget, backbone) decides whether a finished
run folder can be reused.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from msdetr.config.dataclass_io import to_dict
from msdetr.config.loader import load_config
from msdetr.config.overlays.resolve import canonical_name, is_variant
from msdetr.errors import MsdetrError

# A step budget never ends on the epoch count: the epochs are set this high and max_steps stops.
UNBOUNDED_EPOCHS = 1_000_000


@dataclass(frozen=True)
class Budget:
    """Either `steps` optimizer steps or `minutes` of wall time per run (process start to end)."""

    steps: int | None = None
    minutes: float | None = None

    def __post_init__(self) -> None:
        if (self.steps is None) == (self.minutes is None):
            raise MsdetrError("give one budget: --steps N or --minutes M (the same for every run)")
        if self.steps is not None and self.steps < 1:
            raise MsdetrError(f"--steps: got {self.steps}; it must be >= 1")
        if self.minutes is not None and not self.minutes > 0:
            raise MsdetrError(f"--minutes: got {self.minutes}; it must be > 0")

    def overrides(self) -> list[str]:
        if self.steps is not None:
            return [f"train.max_steps={self.steps}", "train.time_limit_minutes=null",
                    f"train.epochs={UNBOUNDED_EPOCHS}"]
        return [f"train.time_limit_minutes={self.minutes}", "train.max_steps=null"]

    def as_dict(self) -> dict[str, Any]:
        return {"steps": self.steps} if self.steps is not None else {"minutes": self.minutes}


@dataclass
class RunPlan:
    """One (variant, seed): its folder and the request its worker trains."""

    variant: str
    seed: int
    run_dir: Path
    request: dict[str, Any] = field(default_factory=dict)


def folder_name(variant: str) -> str:
    """A file-system-safe folder name for a variant (paths and odd characters become `_`)."""
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", variant)


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise MsdetrError(f"--seeds: got {text!r}; give comma-separated integers, e.g. 0,1,2") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise MsdetrError(f"--seeds: got {text!r}; give distinct comma-separated integers, e.g. 0,1,2")
    return seeds


def variant_name(spec: str) -> str:
    return canonical_name(spec) if is_variant(spec) else (Path(spec).stem if spec.endswith((".yaml", ".yml")) else spec)


def plan_runs(
    variants: list[str],
    seeds: list[int],
    budget: Budget,
    out: Path,
    overrides: list[str] = (),
    device: str = "auto",
    threads: int | None = None,
    init_backbone: str | None = None,
) -> list[RunPlan]:
    """Every (variant, seed), seeds outermost so that the first runs to finish cover every variant."""
    names = [variant_name(v) for v in variants]
    if len(set(names)) != len(names):
        raise MsdetrError(f"variants: the same variant is given twice ({', '.join(names)})")
    study = [*budget.overrides(), f"train.device={device}", "train.progress=false", "train.vis_images=0"]
    if threads:
        study.append(f"train.num_threads={threads}")
    backbone = str(Path(init_backbone).resolve()) if init_backbone else None
    if init_backbone and not Path(init_backbone).is_file():
        raise MsdetrError(f"--init-backbone: {init_backbone}: no such file")
    configs = {}
    for spec, name in zip(variants, names):
        own = load_config(spec, list(overrides))  # the variant's own epochs set the schedule's shape
        configs[name] = (own.train.epochs, spec)
    runs = []
    for seed in seeds:
        for spec, name in zip(variants, names):
            epochs, _ = configs[name]
            cfg = load_config(spec, ["train.eval_every=1", *overrides, *study, f"train.seed={seed}"])
            request = {
                "variant": name,
                "spec": spec,
                "seed": seed,
                "budget": budget.as_dict(),
                "schedule_epochs": epochs,
                "init_backbone": backbone,
                "config": json.loads(json.dumps(to_dict(cfg))),  # plain JSON types (tuples -> lists)
            }
            runs.append(RunPlan(name, seed, out / "runs" / folder_name(name) / f"seed{seed}", request))
    return runs
