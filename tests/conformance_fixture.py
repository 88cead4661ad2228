"""Loading the official MS-DETR conformance fixture (see ../shared/conformance/README.md).

Path from the environment variable MSDETR_OFFICIAL_FIXTURE, by default
`../shared/conformance/official_msdetr_fixture.pt` next to the repository root.
Tests that need it are skipped with a clear reason when it is absent.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import pytest
import torch

from msdetr.modeling.outputs import (
    ONE_TO_MANY,
    ONE_TO_ONE,
    DetectorOutput,
    EncoderPredictions,
    StreamPredictions,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_FIXTURE = REPO_ROOT.parent / "shared" / "conformance" / "official_msdetr_fixture.pt"


def fixture_path() -> Path:
    return Path(os.environ.get("MSDETR_OFFICIAL_FIXTURE", DEFAULT_FIXTURE))


@functools.lru_cache(maxsize=1)
def _load(path: str) -> dict:
    return torch.load(path, weights_only=False, map_location="cpu")


def load_fixture() -> dict:
    """The fixture dict, or skip the calling test when the file is absent."""
    path = fixture_path()
    if not path.is_file():
        pytest.skip(f"official conformance fixture not found at {path} (set MSDETR_OFFICIAL_FIXTURE)")
    return _load(str(path))


def _stack_stream(outputs: dict) -> StreamPredictions:
    layers = [*outputs.get("aux_outputs", []), outputs]
    return StreamPredictions(
        logits=torch.stack([layer["pred_logits"] for layer in layers]),
        boxes=torch.stack([layer["pred_boxes"] for layer in layers]),
    )


def official_outputs_to_detector_output(outputs: dict) -> DetectorOutput:
    """Official forward outputs (pred_logits / pred_boxes / aux_outputs / o2m_outputs / enc_outputs)
    as our `DetectorOutput`: streams (L, B, Q, C) with the final layer last."""
    streams = {ONE_TO_ONE: _stack_stream(outputs)}
    if "o2m_outputs" in outputs:
        streams[ONE_TO_MANY] = _stack_stream(outputs["o2m_outputs"])
    encoder = None
    if "enc_outputs" in outputs:
        enc = outputs["enc_outputs"]
        encoder = EncoderPredictions(
            logits=enc["pred_logits"], boxes=enc["pred_boxes"], anchors=enc["anchors"]
        )
    return DetectorOutput(streams=streams, encoder=encoder)
