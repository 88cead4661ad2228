"""Reading a run configuration: YAML presets with `base:` inheritance and dotted overrides.

A config file is a YAML mapping shaped like `msdetr.config.schema.Config`; it may name a
`base:` (a preset name or a path relative to the file) whose values it overrides, key by
key (mappings merge recursively, everything else is replaced). Overrides from the command
line are `dotted.key=value` strings, the value read as YAML (`--set model.num_queries=900`,
`--set train.schedule.drop_epochs=[8,11]`). Every file and every override is checked on its
own, so an unknown or misspelled key is reported with the file or override it came from.
"""

from __future__ import annotations

import copy
import math
import re
import types
from collections.abc import Iterable
from dataclasses import fields, is_dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

import yaml

from msdetr.config.dataclass_io import from_dict, to_dict
from msdetr.config.overlays.resolve import is_variant, load_variant, variant_dict
from msdetr.config.schema import Config
from msdetr.errors import MsdetrError

DEFAULT_PRESET = "tiny"
_MAX_BASE_DEPTH = 16


class _YamlLoader(yaml.SafeLoader):
    """SafeLoader that also reads `1e-4` (no dot, as YAML 1.2 allows) as a float."""


_YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def _yaml_load(text: str) -> Any:
    return yaml.load(text, Loader=_YamlLoader)  # noqa: S506 - a SafeLoader subclass


def preset_dir() -> Path:
    """The folder of the presets shipped with the package."""
    return Path(str(resources.files("msdetr.config") / "presets"))


def list_presets() -> dict[str, str]:
    """Preset name -> its one-line `description`."""
    presets = {}
    for path in sorted(preset_dir().glob("*.yaml")):
        data = _read_yaml(path)
        presets[path.stem] = str(data.get("description", "")).strip().splitlines()[0] if data.get("description") else ""
    return presets


def resolve_source(source: str, relative_to: Path | None = None) -> Path:
    """A preset name or a YAML path -> the file. Paths are tried first (relative to `relative_to`)."""
    candidates = []
    as_path = Path(source).expanduser()
    if relative_to is not None and not as_path.is_absolute():
        candidates.append(relative_to / as_path)
    candidates.append(as_path)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    name = source.removesuffix(".yaml")
    preset = preset_dir() / f"{name}.yaml"
    if "/" not in name and preset.is_file():
        return preset
    raise MsdetrError(f"{source}: no such config file or preset; presets: {', '.join(list_presets())}")


def load_config(source: str | None = None, overrides: Iterable[str] = ()) -> Config:
    """Build the run configuration from a preset name or YAML path plus `key=value` overrides.

    source: None uses the `tiny` preset (the CPU demo); `BASE+METHOD+...` applies training
        methods as overlays to a base preset or file (`msdetr.config.overlays`).
    """
    if is_variant(source):
        return load_variant(source, overrides)
    path = resolve_source(source or DEFAULT_PRESET)
    merged = _load_with_bases(path, chain=[])
    for override in overrides:
        merged = deep_merge(merged, parse_override(override))
    cfg = from_dict(Config, merged, where=str(path))
    validate_config(cfg, where=str(path))
    return cfg


def config_from_dict(data: dict[str, Any], where: str = "config") -> Config:
    """A `Config` from a plain dict (e.g. the resolved config saved in a checkpoint)."""
    cfg = from_dict(Config, data, where=where)
    validate_config(cfg, where=where)
    return cfg


def save_config(cfg: Config, path: str | Path) -> None:
    """Write the resolved config as YAML (loadable again with `load_config`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dump_config(cfg))


def dump_config(cfg: Config) -> str:
    return yaml.safe_dump(_plain(to_dict(cfg)), sort_keys=False, default_flow_style=None)


def _plain(value: Any) -> Any:
    """Tuples -> lists so safe_dump writes plain YAML."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = _yaml_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        raise MsdetrError(f"{path}:{line} not valid YAML ({getattr(err, 'problem', err)}); fix the syntax") from None
    except OSError as err:
        raise MsdetrError(f"{path}: cannot read ({err.strerror})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise MsdetrError(f"{path}: top level must be a mapping of config sections, got {type(data).__name__}")
    return data


def _load_with_bases(path: Path, chain: list[Path]) -> dict[str, Any]:
    resolved = path.resolve()
    if resolved in chain:
        loop = " -> ".join(str(p) for p in [*chain, resolved])
        raise MsdetrError(f"{path}: base: inheritance loop ({loop}); remove one of the base: entries")
    if len(chain) > _MAX_BASE_DEPTH:
        raise MsdetrError(f"{path}: base: more than {_MAX_BASE_DEPTH} levels of inheritance")
    data = _read_yaml(path)
    base = data.pop("base", None)
    # Check this file on its own, so errors name the file that holds the bad key.
    from_dict(Config, data, where=str(path))
    if base is None:
        return data
    if not isinstance(base, str):
        raise MsdetrError(f"{path}: base: must be a preset name or a file path, got {base!r}")
    if is_variant(base) and not (path.parent / base).is_file():  # `base: ddetr_pp_r50_300+hybrid`
        base_source, _, methods = base.partition("+")
        local = path.parent / base_source
        return deep_merge(variant_dict(f"{local if local.is_file() else base_source}+{methods}"), data)
    base_path = resolve_source(base, relative_to=path.parent)
    return deep_merge(_load_with_bases(base_path, [*chain, resolved]), data)


def deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """A copy of `base` with `update` applied: mappings merge recursively, other values replace."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def parse_override(text: str) -> dict[str, Any]:
    """`a.b.c=value` -> {"a": {"b": {"c": value}}} after checking the key exists in `Config`."""
    where = f"--set {text}"
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise MsdetrError(f"{where}: expected key=value, e.g. --set model.num_queries=900")
    try:
        value = _yaml_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw  # plain strings such as paths with ':' are fine
    parts = key.split(".")
    target = _check_key_path(parts, where)
    if value is not None and not isinstance(value, str) and _accepts(target, str):
        value = raw.strip()  # `--set name=2024` names a run "2024"
    nested: dict[str, Any] = {parts[-1]: value}
    for part in reversed(parts[:-1]):
        nested = {part: nested}
    from_dict(Config, nested, where=where)  # type check of the value
    return nested


def _accepts(tp: Any, kind: type) -> bool:
    return tp is kind or (get_origin(tp) in (Union, types.UnionType) and kind in get_args(tp))


def _check_key_path(parts: list[str], where: str) -> Any:
    """Check that the dotted key exists in `Config`; returns the type of its value."""
    cls: Any = Config
    for depth, part in enumerate(parts):
        if not (isinstance(cls, type) and is_dataclass(cls)):
            prefix = ".".join(parts[:depth])
            raise MsdetrError(f"{where}: '{prefix}' has no sub-keys; set it as a whole")
        names = [f.name for f in fields(cls)]
        if part not in names:
            prefix = ".".join(parts[:depth])
            raise MsdetrError(
                f"{where}: unknown key '{'.'.join(parts[: depth + 1])}'; valid keys "
                f"{'under ' + repr(prefix) if prefix else 'at the top'}: {', '.join(names)}"
            )
        cls = get_type_hints(cls)[part]
    return cls


def validate_config(cfg: Config, where: str = "config") -> None:
    """Checks across fields and sections; raises `MsdetrError` naming the first problem."""
    t = cfg.train
    checks = [
        (t.epochs >= 1, "train.epochs", t.epochs, ">= 1"),
        (t.batch_size >= 1, "train.batch_size", t.batch_size, ">= 1"),
        (t.accumulate_steps >= 1, "train.accumulate_steps", t.accumulate_steps, ">= 1"),
        (t.reference_batch_size >= 1, "train.reference_batch_size", t.reference_batch_size, ">= 1"),
        (t.optimizer.lr > 0, "train.optimizer.lr", t.optimizer.lr, "> 0"),
        (t.optimizer.lr_backbone >= 0, "train.optimizer.lr_backbone", t.optimizer.lr_backbone, ">= 0"),
        (t.optimizer.weight_decay >= 0, "train.optimizer.weight_decay", t.optimizer.weight_decay, ">= 0"),
        (t.clip_max_norm >= 0, "train.clip_max_norm", t.clip_max_norm, ">= 0 (0 disables clipping)"),
        (t.max_nonfinite_steps >= 1, "train.max_nonfinite_steps", t.max_nonfinite_steps, ">= 1"),
        (t.schedule.warmup_steps >= 0, "train.schedule.warmup_steps", t.schedule.warmup_steps, ">= 0"),
        (
            0 < t.schedule.warmup_start_factor <= 1,
            "train.schedule.warmup_start_factor",
            t.schedule.warmup_start_factor,
            "in (0, 1]",
        ),
        (0 <= t.schedule.min_factor <= 1, "train.schedule.min_factor", t.schedule.min_factor, "in [0, 1]"),
        (0 < t.schedule.drop_factor <= 1, "train.schedule.drop_factor", t.schedule.drop_factor, "in (0, 1]"),
        (
            all(e >= 1 for e in t.schedule.drop_epochs),
            "train.schedule.drop_epochs",
            t.schedule.drop_epochs,
            "epochs >= 1 (the drop applies from that 0-based epoch on)",
        ),
        (0 < t.ema.decay < 1, "train.ema.decay", t.ema.decay, "in (0, 1)"),
        (t.ema.warmup_steps >= 0, "train.ema.warmup_steps", t.ema.warmup_steps, ">= 0"),
        (t.max_steps is None or t.max_steps >= 1, "train.max_steps", t.max_steps, ">= 1 or null"),
        (
            t.time_limit_minutes is None or t.time_limit_minutes > 0,
            "train.time_limit_minutes",
            t.time_limit_minutes,
            "> 0 or null",
        ),
        (t.checkpoint_every_steps >= 0, "train.checkpoint_every_steps", t.checkpoint_every_steps, ">= 0"),
        (t.eval_every >= 0, "train.eval_every", t.eval_every, ">= 0"),
        (t.log_every >= 1, "train.log_every", t.log_every, ">= 1"),
        (t.num_threads is None or t.num_threads >= 1, "train.num_threads", t.num_threads, ">= 1 or null"),
        (t.num_workers is None or t.num_workers >= 0, "train.num_workers", t.num_workers, ">= 0 or null"),
        (t.vis_images >= 0, "train.vis_images", t.vis_images, ">= 0"),
        (
            cfg.eval.batch_size is None or cfg.eval.batch_size >= 1,
            "eval.batch_size",
            cfg.eval.batch_size,
            ">= 1 or null",
        ),
        (cfg.eval.topk >= 1, "eval.topk", cfg.eval.topk, ">= 1"),
        (
            cfg.eval.nms_iou is None or 0 < cfg.eval.nms_iou <= 1,
            "eval.nms_iou",
            cfg.eval.nms_iou,
            "in (0, 1] or null",
        ),
        (
            all(math.isfinite(b) and 0 <= b < 1 for b in t.optimizer.betas),
            "train.optimizer.betas",
            t.optimizer.betas,
            "two numbers in [0, 1)",
        ),
    ]
    for ok, key, value, expected in checks:
        if not ok:
            raise MsdetrError(f"{where}: {key} is {value!r}; it must be {expected}")
    mixed_model = cfg.model.mixed_supervision.enabled
    mixed_loss = cfg.supervision.strategy == "mixed"
    if mixed_loss and not mixed_model:
        raise MsdetrError(
            f"{where}: supervision.strategy is 'mixed' but model.mixed_supervision.enabled is "
            "false; enable it (the one-to-many stream) or use strategy 'one_to_one'"
        )
    if mixed_model and not mixed_loss:
        raise MsdetrError(
            f"{where}: model.mixed_supervision.enabled is true but supervision.strategy is "
            "'one_to_one', so the one-to-many stream would never be supervised; set "
            "supervision.strategy: mixed or disable it"
        )
    _check_extra_query_groups(cfg, where)
    try:
        cfg.supervision.validate()
    except MsdetrError as err:
        raise MsdetrError(f"{where}: {err}") from None


def _check_extra_query_groups(cfg: Config, where: str) -> None:
    """Hybrid / group queries and their supervision come together (a stream nobody supervises wastes time)."""
    m, s = cfg.model, cfg.supervision
    if m.hybrid.num_queries < 0:
        raise MsdetrError(f"{where}: model.hybrid.num_queries is {m.hybrid.num_queries}; it must be >= 0")
    if m.group.num_groups < 1:
        raise MsdetrError(f"{where}: model.group.num_groups is {m.group.num_groups}; it must be >= 1")
    pairs = [
        ("model.hybrid.num_queries > 0", m.hybrid.num_queries > 0, "supervision.hybrid.enabled", s.hybrid.enabled),
        ("model.group.num_groups > 1", m.group.num_groups > 1, "supervision.group.enabled", s.group.enabled),
    ]
    for model_key, model_on, loss_key, loss_on in pairs:
        if model_on != loss_on:
            raise MsdetrError(
                f"{where}: {model_key} is {str(model_on).lower()} but {loss_key} is {str(loss_on).lower()}; "
                "the extra queries and their supervision are enabled together (set both or neither)"
            )
