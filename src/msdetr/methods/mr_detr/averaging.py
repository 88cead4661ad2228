"""Weighted averaging of checkpoints, as Mr. DETR's README recommends after training (an option,
not part of training): the released `projects/modelmean_12ep.py` averages every state-dict entry
as 0.8 x the final (iteration 89999) + 0.15 x iteration 29999 + 0.05 x iteration 59999 (weights as
released; `modelmean_24ep.py`: 0.8 x 179999 + 0.1 x 149999 + 0.05 x 119999 + 0.05 x 89999).

    msdetr average-checkpoints final.pt step30k.pt step60k.pt --weights 0.8 0.15 0.05 -o averaged.pt

Floating-point entries are averaged in float64 and stored in their own dtype; other entries (integer
buffers) must be equal in every file and are kept. The output is a model file with the first file's
config and classes, without training state (it cannot be resumed).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from msdetr.errors import MsdetrError
from msdetr.model_io import ModelFile, load_model_file, save_model_file

RELEASED_WEIGHTS_12EP = (0.8, 0.15, 0.05)  # final, iteration 29999, iteration 59999
RELEASED_WEIGHTS_24EP = (0.8, 0.1, 0.05, 0.05)  # final, 149999, 119999, 89999


def check_weights(weights: Sequence[float], count: int) -> None:
    """One weight per checkpoint, each > 0, summing to 1 (within 1e-6)."""
    if len(weights) != count:
        raise MsdetrError(f"--weights: got {len(weights)} weights for {count} checkpoints; give one per checkpoint")
    if any(not math.isfinite(w) or w <= 0 for w in weights):
        raise MsdetrError(f"--weights: got {list(weights)}; every weight must be > 0")
    if abs(sum(weights) - 1.0) > 1e-6:
        raise MsdetrError(f"--weights: {list(weights)} sum to {sum(weights):g}; they must sum to 1")


def average_state_dicts(states: Sequence[Mapping[str, Tensor]], weights: Sequence[float],
                        names: Sequence[str] | None = None) -> dict[str, Tensor]:
    """sum_i weights[i] * states[i] per floating entry (float64 sum); equal non-float entries kept.
    names: the sources, for error messages."""
    check_weights(weights, len(states))
    names = list(names) if names is not None else [f"state {i}" for i in range(len(states))]
    first = states[0]
    for name, state in zip(names[1:], states[1:]):
        if set(state) != set(first):
            diff = sorted(set(state) ^ set(first))
            raise MsdetrError(f"{name}: its entries differ from {names[0]}'s ({len(diff)} keys, e.g. {diff[0]}); "
                              "average checkpoints of the same model")
    out = {}
    for key, value in first.items():
        for name, state in zip(names[1:], states[1:]):
            if state[key].shape != value.shape:
                raise MsdetrError(f"{name}: {key} has shape {tuple(state[key].shape)}, {names[0]} "
                                  f"{tuple(value.shape)}; average checkpoints of the same model")
        if value.is_floating_point():
            total = sum(w * state[key].double() for w, state in zip(weights, states))
            out[key] = total.to(value.dtype)
        else:
            for name, state in zip(names[1:], states[1:]):
                if not torch.equal(state[key], value):
                    raise MsdetrError(f"{name}: {key} (not floating point) differs from {names[0]}'s; "
                                      "it cannot be averaged")
            out[key] = value
    return out


def average_model_files(paths: Sequence[str | os.PathLike], weights: Sequence[float],
                        output: str | os.PathLike) -> ModelFile:
    """Average msdetr model files (or checkpoints) into `output`; returns what was written."""
    check_weights(weights, len(paths))
    files = [load_model_file(p) for p in paths]
    first = files[0]
    for path, f in zip(paths[1:], files[1:]):
        if f.config != first.config:
            raise MsdetrError(f"{path}: its model config differs from {paths[0]}'s; average checkpoints of one run")
    state = average_state_dicts([f.state_dict for f in files], weights, [str(p) for p in paths])
    extra = {"averaged_from": [{"path": str(p), "weight": float(w)} for p, w in zip(paths, weights)]}
    if first.extra and "run_config" in first.extra:
        extra["run_config"] = first.extra["run_config"]
    save_model_file(output, first.config, state, first.class_names, first.category_ids, **extra)
    return ModelFile(first.config, state, first.class_names, first.category_ids, first.source, extra)
