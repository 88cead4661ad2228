"""Our detector, loaded through the official-checkpoint converter, reproduces the official
implementation's outputs and post-processed detections for all six fixture configs."""

from __future__ import annotations

import pytest
import torch

from msdetr.compat.official import config_from_official_args, convert_official_state_dict
from msdetr.evaluation.postprocess import postprocess
from msdetr.modeling.build import build_model
from support.references import load_reference
from support.tiny import pad_batch

pytestmark = pytest.mark.slow

CONFIGS = ["ddetr_boxrefine_twostage", "ddetr_pp", "msdetr", "msdetr_noauxffn", "msdetr_pp", "msdetr_pp_merge"]
ATOL = 1e-4


def converted_model(fixture: dict, name: str):
    entry = fixture["configs"][name]
    state = {k: fixture["state_dict"][k].float() for k in entry["state_dict_keys"]}
    cfg = config_from_official_args(entry["args"], state)
    converted, report = convert_official_state_dict(state, cfg)
    assert report.unplaced == [], f"keys the converter could not place: {report.unplaced}"
    model = build_model(cfg).eval()
    result = model.load_state_dict(converted, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    return model, entry


def _assert_stream(ours, official_final: dict, label: str):
    layers = [*official_final.get("aux_outputs", []), official_final]
    assert ours.logits.shape[0] == len(layers), f"{label}: layer count"
    for i, layer in enumerate(layers):
        torch.testing.assert_close(ours.logits[i], layer["pred_logits"], atol=ATOL, rtol=0,
                                   msg=lambda m, i=i: f"{label} layer {i} logits: {m}")
        torch.testing.assert_close(ours.boxes[i], layer["pred_boxes"], atol=ATOL, rtol=0,
                                   msg=lambda m, i=i: f"{label} layer {i} boxes: {m}")


@pytest.mark.parametrize("name", CONFIGS)
def test_outputs_match_official(name):
    fixture = load_reference("official")
    model, entry = converted_model(fixture, name)
    images, mask = pad_batch(fixture["inputs"]["images"])
    with torch.no_grad():
        out = model(images, mask, all_streams=True)
    official = entry["outputs"]
    _assert_stream(out.streams["one_to_one"], official, f"{name} one_to_one")
    assert ("o2m_outputs" in official) == ("one_to_many" in out.streams)
    if "o2m_outputs" in official:
        _assert_stream(out.streams["one_to_many"], official["o2m_outputs"], f"{name} one_to_many")
    enc = official["enc_outputs"]
    torch.testing.assert_close(out.encoder.logits, enc["pred_logits"], atol=ATOL, rtol=0)
    torch.testing.assert_close(out.encoder.boxes, enc["pred_boxes"], atol=ATOL, rtol=0)
    torch.testing.assert_close(out.encoder.anchors, enc["anchors"], atol=ATOL, rtol=0)

    detections = postprocess(out.logits, out.boxes, fixture["inputs"]["orig_sizes"], topk=100)
    for ours, theirs in zip(detections, entry["postprocess"]):
        torch.testing.assert_close(ours.scores, theirs["scores"], atol=ATOL, rtol=0)
        assert torch.equal(ours.labels, theirs["labels"])
        torch.testing.assert_close(ours.boxes, theirs["boxes"], atol=ATOL, rtol=0)
