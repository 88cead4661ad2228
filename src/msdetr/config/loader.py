"""Reading a run configuration: YAML presets with `base:` inheritance and dotted overrides.

A config file is a YAML mapping shaped like `msdetr.config.schema.Config`; it may name a
`base:` (a preset name or a path relative to the file) whose values it overrides, key by
key (mappings merge recursively, everything else is replaced). Overrides from the command
line are `dotted.key=value` strings, the value read as YAML (`--set model.num_queries=900`,
`--set train.schedule.drop_epochs=[8,11]`). Every file and every override is checked on its
own, so an unknown or misspelled key is reported with the file or override it came from, and
the checks of the whole config (`msdetr.config.checks`) name the file or `--set` that gave
the offending value (`msdetr.config.origins`).
"""

from __future__ import annotations

import re
import types
from collections.abc import Iterable
from dataclasses import fields, is_dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

import yaml

from msdetr.config.checks import config_problems
from msdetr.config.dataclass_io import from_dict, to_dict
from msdetr.config.origins import Origins
from msdetr.config.overlays.resolve import apply_overlays, deep_merge, is_variant, split_variant
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
    origins = Origins(str(path))
    merged = apply_overrides(_load_with_bases(path, chain=[], origins=origins), overrides, origins)
    cfg = from_dict(Config, merged, where=str(path))
    validate_config(cfg, where=str(path), origins=origins)
    return cfg


def apply_overrides(data: dict[str, Any], overrides: Iterable[str], origins: Origins | None = None) -> dict[str, Any]:
    """`data` with the `key=value` overrides applied in order (each recorded in `origins` as its `--set`)."""
    for override in overrides:
        nested = parse_override(override)
        if origins is not None:
            origins.record(nested, f"--set {override}")
        data = deep_merge(data, nested)
    return data


def config_from_dict(data: dict[str, Any], where: str = "config", origins: Origins | None = None) -> Config:
    """A `Config` from a plain dict (e.g. the resolved config saved in a checkpoint); `origins`:
    where values came from (e.g. `--set` on top of the saved config), for the errors."""
    cfg = from_dict(Config, data, where=where)
    validate_config(cfg, where=where, origins=origins)
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


def _load_with_bases(path: Path, chain: list[Path], origins: Origins | None = None) -> dict[str, Any]:
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
        if origins is not None:
            origins.record(data, str(path))
        return data
    if not isinstance(base, str):
        raise MsdetrError(f"{path}: base: must be a preset name or a file path, got {base!r}")
    if is_variant(base) and not (path.parent / base).is_file():  # `base: ddetr_pp_r50_300+hybrid`
        base_source, _, methods = base.partition("+")
        local = path.parent / base_source
        return deep_merge(variant_dict(f"{local if local.is_file() else base_source}+{methods}"), data)
    base_path = resolve_source(base, relative_to=path.parent)
    merged = deep_merge(_load_with_bases(base_path, [*chain, resolved], origins), data)
    if origins is not None:  # after the base's, which this file overrides
        origins.record(data, str(path))
    return merged


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
        per_stream = isinstance(cls, type) and hasattr(cls, "from_config")  # keyed by stream name
        if not (per_stream or (isinstance(cls, type) and is_dataclass(cls))):
            prefix = ".".join(parts[:depth])
            raise MsdetrError(f"{where}: '{prefix}' has no sub-keys; set it as a whole")
        hints = {} if per_stream else get_type_hints(cls)
        own = [] if per_stream else [f.name for f in fields(cls)]
        flat = [hints[name] for name in own if getattr(hints[name], "flat", False)]
        units = {name: tp for tp in flat for name in tp.names()}  # method units' sections
        names = cls.names() if per_stream else [n for n in own if not getattr(hints[n], "flat", False)] + list(units)
        if part not in names:
            prefix = ".".join(parts[:depth])
            raise MsdetrError(
                f"{where}: unknown key '{'.'.join(parts[: depth + 1])}'; valid keys "
                f"{'under ' + repr(prefix) if prefix else 'at the top'}: {', '.join(names)}"
            )
        cls = cls.value_type if per_stream else units[part].section_type(part) if part in units else hints[part]
    return cls


def validate_config(cfg: Config, where: str = "config", origins: Origins | None = None) -> None:
    """Checks of ranges and of options that need each other (`msdetr.config.checks`); raises
    `MsdetrError` for the first problem, naming the file or `--set` that gave the value
    (`origins`; without it, `where`)."""
    problems = config_problems(cfg)
    if not problems:
        return
    problem = problems[0]
    origin = (origins or Origins(where)).latest(problem.keys)
    raise MsdetrError(f"{origin}: {problem.message}")


def variant_dict(spec: str, overrides: Iterable[str] = ()) -> dict[str, Any]:
    """The merged (not yet typed) config dict of `BASE+METHOD...` plus overrides."""
    base, _ = split_variant(spec)
    parsed = [parse_override(o) for o in overrides]
    return apply_overlays(spec, _load_with_bases(resolve_source(base), chain=[]), parsed)


def load_variant(spec: str, overrides: Iterable[str] = ()) -> Config:
    """The checked `Config` of `BASE+METHOD...` plus overrides."""
    cfg = from_dict(Config, variant_dict(spec, overrides), where=spec)
    validate_config(cfg, where=spec)
    return cfg
