"""`msdetr train --resume`: an edited `config.yaml` in the run folder is never lost silently.

A resumed run takes its config from the checkpoint (`last.pt`) plus `--set`, and writes it
back to `<run>/config.yaml`. When that file was edited since the checkpoint (it differs from
the checkpoint's config in values that `--set` does not give as well), resuming would
overwrite the edit; instead it stops with one line naming the edited keys and the `--set`
that applies them (or, for `model.*`, which a resumed run cannot change, how to start a new
run from the checkpoint's weights).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from msdetr.config.dataclass_io import to_dict
from msdetr.config.loader import load_config
from msdetr.config.schema import Config
from msdetr.errors import MsdetrError

CONFIG_FILE = "config.yaml"


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mapping -> {dotted key: leaf value}."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and value:
            out.update(flatten(value, dotted))
        else:
            out[dotted] = value
    return out


def set_option(key: str, value: Any) -> str:
    """`--set key=value` with the value as YAML reads it back (lists in brackets, null, true)."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10**6).strip()
    text = text.removesuffix("...").strip()
    if any(c in text for c in " []{},'\""):
        text = f"'{text}'" if "'" not in text else f'"{text}"'
    return f"--set {key}={text}"


def edited_keys(run_dir: Path, saved: Config, resumed: Config) -> dict[str, tuple[Any, Any]]:
    """Keys whose value in `<run_dir>/config.yaml` differs from the checkpoint's config (`saved`)
    and is not what the resumed config (`resumed`: checkpoint + --set) uses: {key: (checkpoint, file)}.
    Empty when the file is missing or agrees."""
    path = run_dir / CONFIG_FILE
    if not path.is_file():
        return {}
    on_disk = flatten(to_dict(load_config(str(path))))
    before, after = flatten(to_dict(saved)), flatten(to_dict(resumed))
    return {
        key: (before.get(key), value)
        for key, value in on_disk.items()
        if value != before.get(key) and value != after.get(key)
    }


def check_config_not_edited(run_dir: Path, checkpoint: Path, saved: Config, resumed: Config) -> None:
    """Raise `MsdetrError` when resuming would overwrite edits made to `<run_dir>/config.yaml`."""
    edits = edited_keys(run_dir, saved, resumed)
    if not edits:
        return
    path = run_dir / CONFIG_FILE
    shown = ", ".join(f"{key}: {old!r} -> {new!r}" for key, (old, new) in list(edits.items())[:4])
    more = f" and {len(edits) - 4} more" if len(edits) > 4 else ""
    model_keys = [key for key in edits if key.startswith("model.")]
    if model_keys:
        how = (f"a resumed run keeps its model ({model_keys[0]}), so undo that edit to resume, or start a new "
               f"run from these weights: msdetr train --config {path} --init-weights {checkpoint}")
    else:
        sets = " ".join(set_option(key, new) for key, (_, new) in edits.items())
        how = f"to use the edit add {sets}; to drop it, undo it in the file"
    raise MsdetrError(
        f"{path}: edited since {checkpoint} was saved ({shown}{more}); --resume takes the checkpoint's config "
        f"plus --set and would overwrite the file: {how}"
    )
